"""The network policy's allowance without proof of presence (issue 13): versioned, admin-set, read by the ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from test_settlement_cli import invoke

from coalition.settlement.errors import InvalidPolicy
from coalition.settlement.policy import PolicyCache, current_policy, set_policy


async def test_the_allowance_is_a_policy_version_the_cache_sees_at_once(db: Any, settings: Any) -> None:
    cache = PolicyCache(db, settings, ttl_s=3600)
    now = dt.datetime.now(dt.UTC)
    # with no version stored, the setting
    assert await cache.redeem_without_proof_points(now) == settings.redeem_without_proof_points == 200
    await set_policy(db, settings, redeem_without_proof_points=75, now=now)
    assert await cache.redeem_without_proof_points(now) == 75  # set in this process: no wait for the TTL
    later = now + dt.timedelta(days=1)
    await set_policy(db, settings, redeem_without_proof_points=0, effective_from=later, now=now)
    assert await cache.redeem_without_proof_points(now + dt.timedelta(hours=1)) == 75
    assert await cache.redeem_without_proof_points(later) == 0
    # other fields keep the allowance of the version they start from
    await set_policy(db, settings, timezone="Europe/Paris", effective_from=later + dt.timedelta(days=1), now=now)
    assert (await current_policy(db, settings, later + dt.timedelta(days=2))).redeem_without_proof_points == 0


async def test_a_bad_allowance_is_refused_and_writes_nothing(db: Any, settings: Any) -> None:
    for value in (-1, 2**31, True):
        try:
            await set_policy(db, settings, redeem_without_proof_points=value)
        except InvalidPolicy as exc:
            assert exc.code == "INVALID_REDEEM_WITHOUT_PROOF_POINTS" and exc.field == "redeemWithoutProofPoints"
        else:
            raise AssertionError(f"{value!r} was accepted")
    assert (await current_policy(db, settings)).id is None


def test_policy_set_on_the_command_line(tmp_path: Path) -> None:
    db_file = tmp_path / "demo.db"
    assert invoke(db_file, "demo", "--members", "8", "--merchants", "2", "--seed", "5").exit_code == 0
    result = invoke(db_file, "policy", "set", "--redeem-without-proof-points", "75")
    assert result.exit_code == 0, result.output
    shown = invoke(db_file, "policy", "show")
    assert "redeemWithoutProof" in shown.output and "75" in shown.output
