"""Two processes earning during a campaign and under a tier multiplier, retrying each other's keys."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from process_race import race
from program_network import shops
from sqlalchemy import func, select

from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Entry, EntryKind
from coalition.programs.tier_models import EarnBonus
from coalition.programs.tier_review import set_tier_policy

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
WORKER = Path(__file__).with_name("program_earn_worker.py")
ROOT = Path(__file__).resolve().parents[2]


async def run_workers(settings: Any, merchant_id: int, lids: list[str], per_member: int) -> list[dict[str, Any]]:
    return await race(WORKER, [[settings.database_url, str(merchant_id), ",".join(lids), str(per_member), "shared"]
                               for _ in range(2)], timeout_s=180)


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set COALITION_TEST_DATABASE_URL (make test-services)")
async def test_two_processes_earning_with_the_same_keys_write_each_earn_once(db: Any, settings: Any, keys: Any,
                                                                             clock: Any) -> None:
    # given 30 members, half of them SILVER (150 %), and a campaign doubling A's points for the treated
    net = await shops(db, settings, keys, clock, members=30)
    for member in net.members[:15]:
        await net.earn(member, amount_minor=6000)
    now = clock.now
    await set_tier_policy(db, idempotency_key="policy-1", tiers=[{"name": "BASIC", "threshold_points": 0},
                                     {"name": "SILVER", "threshold_points": 50, "multiplier_percent": 150}], now=now)
    campaign = await net.campaign(starts_at=now, ends_at=now + dt.timedelta(days=365), control_percent=30)
    treated = await net.treated(campaign.id)
    # when two processes each make the same 4 earns of 10.00 for every member at once (real clock: now)
    results = await run_workers(settings, net.a.id, [m.loyalty_id for m in net.members], 4)
    # then every key was written once, both processes got the same answer for it, and each got its points
    assert [r["outcomes"] for r in results] == [{"OK": 120}, {"OK": 120}]
    assert results[0]["points"] == results[1]["points"]
    by_lid = {m.loyalty_id: m.id for m in net.members}
    silver = {m.id for m in net.members[:15]}
    for key, points in results[0]["points"].items():
        member_id = by_lid[key.split("-", 1)[1].rsplit("-", 1)[0]]
        expected = 10 + (5 if member_id in silver else 0) + (10 if treated[member_id] else 0)
        assert points == expected, (key, points, expected)
    async with db.read() as conn:
        earns = (await conn.execute(select(func.count()).select_from(Entry).where(
            Entry.kind == EntryKind.EARN, Entry.idempotency_key.like("shared-%")))).scalar_one()
        bonuses = (await conn.execute(select(func.count()).select_from(EarnBonus))).scalar_one()
        await assert_ledger_consistent(conn)
    assert earns == 120
    extra = {m.id for m in net.members if m.id in silver or treated[m.id]}
    assert bonuses == 4 * len(extra)
