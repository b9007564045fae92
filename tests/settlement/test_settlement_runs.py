"""Settlement runs: idempotent retries, concurrent runs, writes during a run, policy versions,
network-issued points, and refusals that write nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.errors import DomainError
from coalition.ledger.models import Allocation, AllocationKind
from coalition.members.service import find_member
from coalition.settlement.models import LineKind, SettlementBatch, SettlementLine, SettlementPosition
from coalition.settlement.policy import set_policy
from coalition.settlement.service import export_statement, get_batch, run_settlement
from coalition.settlement.statements import verify_export

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")


async def _counts(db: Any) -> tuple[int, ...]:
    async with db.read() as conn:
        return tuple([(await conn.execute(select(func.count()).select_from(t))).scalar_one()
                      for t in (SettlementBatch, SettlementLine, SettlementPosition)])


async def _run(s: Any, key: str, end: dt.datetime) -> Any:
    return await run_settlement(s.db, s.settings, s.keys, period_end=end, idempotency_key=key, now=s.clock())


async def test_a_retry_with_the_same_key_returns_the_same_batch(shops: Any) -> None:
    s = shops
    await s.earn(100, s.a)
    await s.redeem(40, s.b)
    first = await s.settle(key="month-1")
    end = first.batch.period_end
    again = await _run(s, "month-1", end)
    assert again.replayed and again.batch.id == first.batch.id and again.batch.digest == first.batch.digest
    await s.probe_error(_run(s, "month-1", end + dt.timedelta(minutes=1)), "IDEMPOTENCY_KEY_CONFLICT")


async def test_two_concurrent_runs_close_the_activity_once(shops: Any) -> None:
    s = shops
    await s.earn(100, s.a)
    await s.redeem(60, s.c)
    s.clock.advance(hours=1)
    end = s.clock()
    same = await asyncio.gather(_run(s, "k", end), _run(s, "k", end))
    assert same[0].batch.id == same[1].batch.id and sorted(r.replayed for r in same) == [False, True]

    await s.earn(10, s.b)
    s.clock.advance(hours=1)
    end = s.clock()
    outcomes = await asyncio.gather(_run(s, "x", end), _run(s, "y", end), return_exceptions=True)
    closed = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(closed) == 1 and len(refused) == 1, outcomes
    assert refused[0].code == "PERIOD_END_NOT_AFTER_LAST_BATCH"
    assert (await _counts(s.db))[0] == 2


def _allowance(points: int) -> Any:
    async def fixed(now: Any) -> int:
        return points
    return fixed


async def test_ledger_writes_during_runs_are_settled_exactly_once(shops: Any) -> None:
    s = shops
    await s.earn(5000, s.a)
    s.ledger.allowance = _allowance(1000)  # 210 points from one member at B: more than the default without proof

    async def writer() -> None:
        for _ in range(30):
            await s.redeem(7, s.b)
            await s.earn(3, s.c)

    async def settler() -> None:
        for _ in range(6):
            s.clock.advance(minutes=1)
            await _run(s, s.key("run"), s.clock())
            await asyncio.sleep(0)

    await asyncio.gather(writer(), settler())
    s.clock.advance(hours=1)
    await _run(s, "final", s.clock())
    async with s.db.read() as conn:
        honored = (await conn.execute(select(func.sum(SettlementLine.points))
                                      .where(SettlementLine.kind == LineKind.HONORED))).scalar_one()
        issued = (await conn.execute(select(func.sum(SettlementLine.points))
                                     .where(SettlementLine.kind == LineKind.ISSUED))).scalar_one()
    assert (honored, issued) == (30 * 7, 5000 + 30 * 3)


async def test_each_transaction_settles_under_the_policy_in_force_when_it_happened(shops: Any) -> None:
    s = shops
    start = s.clock()
    await set_policy(s.db, s.settings, now=start, effective_from=start - dt.timedelta(days=1),
                     point_value_minor=10, funding_model="REDEMPTION", reimbursement_rate="0.5")
    await s.earn(100, s.a)
    await s.redeem(10, s.b)  # 10 x 10 x 0.5 = 50 to B, A pays 100
    s.clock.advance(hours=1)
    await set_policy(s.db, s.settings, now=s.clock(), point_value_minor=20, reimbursement_rate="1")
    s.clock.advance(minutes=1)
    await s.redeem(10, s.b)  # 10 x 20 x 1 = 200 to B, A pays 200
    batch = (await s.settle()).batch
    assert await s.positions(batch.id) == {s.a.id: -300, s.b.id: 250}
    assert batch.funding_models == "REDEMPTION" and batch.network_income_minor == 50
    policies = {line.policy_id for line in await s.lines(batch.id) if line.kind == LineKind.HONORED}
    assert len(policies) == 2


async def test_network_issued_points_are_charged_to_the_network(shops: Any) -> None:
    s = shops
    await set_policy(s.db, s.settings, now=s.clock(), effective_from=s.clock() - dt.timedelta(days=1),
                     point_value_minor=1, funding_model="REDEMPTION", reimbursement_rate="0.9")
    member = await find_member(s.db, s.loyalty_id)
    await s.ledger.award_network_bonus(member_id=member.id, points=50, idempotency_key="bonus-1", reason="welcome")
    await s.redeem(20, s.b)
    async with s.db.read() as conn:
        issuers = set((await conn.execute(select(Allocation.issuer_merchant_id)
                                          .where(Allocation.kind == AllocationKind.REDEEM))).scalars())
    assert issuers == {None}
    batch = (await s.settle()).batch
    assert await s.positions(batch.id) == {s.b.id: 18}  # the network pays B; A owes nothing
    assert batch.network_income_minor == -18
    (line,) = [line for line in await s.lines(batch.id) if line.kind == LineKind.HONORED]
    assert line.issuer_merchant_id is None and line.issuer_minor == -20
    verify_export(await export_statement(s.db, s.keys, batch.id, s.b.id), s.keys.public_key_b64)


async def test_refusals_write_nothing(shops: Any) -> None:
    s = shops
    await s.earn(10, s.a)
    first = await s.settle()
    before = await _counts(s.db)
    await s.probe_error(_run(s, "late", first.batch.period_end - dt.timedelta(seconds=1)),
                        "PERIOD_END_NOT_AFTER_LAST_BATCH")
    await s.probe_error(_run(s, "same-end", first.batch.period_end), "PERIOD_END_NOT_AFTER_LAST_BATCH")
    await s.probe_error(_run(s, "future", s.clock() + dt.timedelta(seconds=1)), "PERIOD_END_IN_FUTURE")
    await s.probe_error(_run(s, "naive", dt.datetime(2026, 1, 1)), "INVALID_PERIOD_END")
    await s.probe_error(_run(s, " ", s.clock()), "INVALID_IDEMPOTENCY_KEY")
    await s.probe_error(get_batch(s.db, 999), "BATCH_NOT_FOUND")
    await s.probe_error(export_statement(s.db, s.keys, first.batch.id, 999), "BATCH_NOT_FOUND")
    assert await _counts(s.db) == before


async def test_a_closed_batch_does_not_change_when_later_activity_reverses_it(shops: Any) -> None:
    s = shops
    await s.earn(100, s.a)
    redemption = await s.redeem(40, s.b)
    first = (await s.settle()).batch
    rows_before = [tuple(line) for line in await s.lines(first.id)]  # every column of every line
    await s.reverse(redemption)
    second = (await s.settle()).batch
    assert [tuple(line) for line in await s.lines(first.id)] == rows_before
    assert (await get_batch(s.db, first.id)).digest == first.digest
    (adjustment,) = [line for line in await s.lines(second.id) if line.kind == LineKind.ADJUSTMENT]
    assert adjustment.original_entry_id == redemption.id and adjustment.original_batch_id == first.id


@pytest.mark.skipif(not PG_URL, reason="two processes racing on PostgreSQL: set COALITION_TEST_DATABASE_URL")
async def test_two_processes_cannot_both_close_the_same_activity(shops: Any, tmp_path: Path) -> None:
    s = shops
    await s.earn(100, s.a)
    await s.redeem(30, s.b)
    end = (s.clock() + dt.timedelta(hours=1)).isoformat()
    now = (s.clock() + dt.timedelta(hours=2)).isoformat()
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    procs = [subprocess.Popen([sys.executable, str(script), PG_URL or "", end, now, f"proc-{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    results = sorted(out.strip() for out, _ in outputs)
    assert results == ["PERIOD_END_NOT_AFTER_LAST_BATCH", "closed"], outputs
    assert (await _counts(s.db))[0] == 1


RACER = """
import asyncio, datetime as dt, sys
from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import DomainError
from coalition.settlement.service import run_settlement

async def main() -> None:
    url, end, now, key = sys.argv[1:]
    settings = load_settings({"COALITION_DATABASE_URL": url, "COALITION_SECRET_KEY": "test-secret-key"})
    db = Database(url, pool_size=2)
    try:
        await run_settlement(db, settings, NetworkKeys.from_settings(settings), idempotency_key=key,
                             period_end=dt.datetime.fromisoformat(end), now=dt.datetime.fromisoformat(now))
        print("closed")
    except DomainError as error:
        print(error.code)
    finally:
        await db.dispose()

asyncio.run(main())
"""


async def test_captured_holds_are_honored_and_voided_ones_are_not(shops: Any) -> None:
    s = shops
    await set_policy(s.db, s.settings, now=s.clock(), effective_from=s.clock() - dt.timedelta(days=1),
                     point_value_minor=1, funding_model="REDEMPTION", reimbursement_rate="0.5")
    await s.earn(100, s.a)
    held = await s.ledger.authorize(merchant_id=s.b.id, loyalty_id=s.loyalty_id, points=40, idempotency_key="h1")
    captured = await s.ledger.capture(merchant_id=s.b.id, hold_id=held.hold.id, points=30, idempotency_key="c1")
    voided = await s.ledger.authorize(merchant_id=s.c.id, loyalty_id=s.loyalty_id, points=20, idempotency_key="h2")
    await s.ledger.void(merchant_id=s.c.id, hold_id=voided.hold.id, idempotency_key="v1")
    first = (await s.settle()).batch
    assert await s.positions(first.id) == {s.a.id: -30, s.b.id: 15}  # 30 captured x 0.5; the void is nothing
    await s.reverse(captured.entry)
    second = (await s.settle()).batch
    assert await s.positions(second.id) == {s.a.id: 30, s.b.id: -15}
    (adjustment,) = [line for line in await s.lines(second.id) if line.kind == LineKind.ADJUSTMENT]
    assert adjustment.original_entry_id == captured.entry.id
