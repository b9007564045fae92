"""Never negative, exactly once: the ledger under concurrent requests and processes."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from process_race import race as race_processes
from sqlalchemy import func, select

from coalition.errors import DomainError
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Allocation, AllocationKind, EntryKind

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
WORKER = Path(__file__).with_name("ledger_race_worker.py")
ROOT = Path(__file__).resolve().parents[2]


async def outcome(call: Callable[[], Awaitable[Any]]) -> str:
    """The error code, "OK", or the type of an unexpected exception (so every task runs to its end)."""
    try:
        await call()
    except DomainError as exc:
        return exc.code
    except Exception as exc:  # a database error here is a finding, reported in the assertion
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return "OK"


async def give_points(net: Any, total: int) -> None:
    """``total`` points in three lots from two issuers."""
    third = total // 3
    await net.earn(third, net.a)
    await net.earn(third, net.c)
    await net.earn(total - 2 * third, net.a)


async def honored_points(db: Any) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.coalesce(func.sum(Allocation.points), 0))
                                   .where(Allocation.kind == AllocationKind.REDEEM))).scalar_one()


async def test_concurrent_redemptions_never_overdraw(net: Any, probe: Any, db: Any) -> None:
    # given a member holding 150 points
    await give_points(net, 150)
    # when 200 one-point redemptions arrive at once, each with its own key
    outcomes = await asyncio.gather(*(outcome(lambda i=i: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key=f"r-{i}"))
        for i in range(200)))
    # then exactly 150 succeed, the rest are refused, and the balance is zero, not negative
    assert Counter(outcomes) == {"OK": 150, "INSUFFICIENT_POINTS": 50}
    state = await probe.member(net.member_id)
    assert (state.balance, state.held) == (0, 0)
    assert len(await probe.entries(kind=EntryKind.REDEEM)) == 150
    assert await honored_points(db) == 150
    assert all(lot.remaining == 0 for lot in await probe.lots(net.member_id))
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


async def test_concurrent_holds_and_redemptions_never_overdraw(net: Any, probe: Any, db: Any) -> None:
    await give_points(net, 90)
    calls = [lambda i=i: net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=2,
                                           idempotency_key=f"r-{i}") for i in range(30)]
    calls += [lambda i=i: net.ledger.authorize(merchant_id=net.c.id, loyalty_id=net.loyalty_id, points=3,
                                               idempotency_key=f"h-{i}") for i in range(30)]
    outcomes = await asyncio.gather(*(outcome(call) for call in calls))
    redeemed = outcomes[:30].count("OK") * 2
    held = outcomes[30:].count("OK") * 3
    assert set(outcomes) <= {"OK", "INSUFFICIENT_POINTS"}
    state = await probe.member(net.member_id)
    assert (state.balance, state.held) == (90 - redeemed - held, held)
    assert state.balance < 2  # nothing left that a refused request could have taken
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


async def test_concurrent_earns_repay_a_debt_exactly(net: Any, probe: Any, db: Any) -> None:
    # given a member owing 100 points (earn 100 at A, spend it at B, A refunds)
    earned = await net.earn(100, net.a)
    await net.redeem(100, net.b)
    await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earned.entry.id, idempotency_key="rev")
    assert (await probe.member(net.member_id)).owed == 100
    # when 30 purchases of 10 points each are earned at once
    outcomes = await asyncio.gather(*(outcome(lambda i=i: net.ledger.earn(
        merchant_id=net.c.id, loyalty_id=net.loyalty_id, purchase_amount_minor=net.amount_for(10, net.c),
        idempotency_key=f"e-{i}")) for i in range(30)))
    # then all succeed: the first 100 points repay the debt, the other 200 are spendable
    assert Counter(outcomes) == {"OK": 30}
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed) == (200, 0)
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


@pytest.mark.parametrize("operation", ["earn", "redeem", "authorize"])
async def test_concurrent_retries_of_one_key_make_one_transaction(net: Any, probe: Any, db: Any,
                                                                   operation: str) -> None:
    # given a member with 100 points
    await net.earn(100, net.c)
    if operation == "earn":
        def call() -> Awaitable[Any]:
            return net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=1234,
                                   idempotency_key="same")
    elif operation == "redeem":
        def call() -> Awaitable[Any]:
            return net.ledger.redeem(merchant_id=net.a.id, loyalty_id=net.loyalty_id, points=7,
                                     idempotency_key="same")
    else:
        def call() -> Awaitable[Any]:
            return net.ledger.authorize(merchant_id=net.a.id, loyalty_id=net.loyalty_id, points=7,
                                        idempotency_key="same")
    # when 20 retries of one request race
    results = await asyncio.gather(*(call() for _ in range(20)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    # then one transaction was made and every retry answers with it
    assert len({r.entry.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert len(await probe.entries(merchant_id=net.a.id, idempotency_key="same")) == 1
    points = results[0].entry.points
    state = await probe.member(net.member_id)
    assert state.balance == 100 + points
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


async def test_concurrent_reversal_retries_reverse_once(net: Any, probe: Any, db: Any) -> None:
    earned = await net.earn(100, net.a)
    await net.redeem(40, net.b)
    results = await asyncio.gather(*(outcome(lambda i=i: net.ledger.reverse(
        merchant_id=net.a.id, transaction_id=earned.entry.id, idempotency_key=f"rev-{i % 2}")) for i in range(10)))
    # two keys: one reversal is made, its key's retries replay it, the other key is refused
    assert Counter(results) == {"OK": 5, "ALREADY_REVERSED": 5}
    assert len(await probe.entries(kind=EntryKind.REVERSAL)) == 1
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed) == (0, 40)


async def race(settings: Any, net: Any, count: int, prefix: str, *extra: str,
               env_extra: dict[str, str] | None = None) -> list[Counter[str]]:
    """Two processes (``ledger_race_worker.py``) each make ``count`` one-point redemptions of ``net``'s
    member at merchant B, started at the same moment; each one's outcomes counted by code."""
    outputs = await race_processes(WORKER, [
        [settings.database_url, str(net.b.id), net.loyalty_id, str(count),
         prefix if "same-key" in extra else f"{prefix}{i}", *extra] for i in range(2)], env=env_extra)
    return [Counter(out) for out in outputs]


@pytest.mark.services
@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set COALITION_TEST_DATABASE_URL (make test-services)")
async def test_two_processes_racing_on_one_member_never_overdraw(net: Any, probe: Any, db: Any,
                                                                 settings: Any) -> None:
    # given a member holding 150 points in a PostgreSQL database both processes share
    await give_points(net, 150)
    per_process = 100
    # when both start 100 one-point redemptions at the same moment
    counts = await race(settings, net, per_process, "proc")
    total = sum(counts, Counter())
    # then together they honored exactly the 150 points, both took part, and the rest were refused
    assert total == {"OK": 150, "INSUFFICIENT_POINTS": 2 * per_process - 150}, counts
    assert all(c["OK"] > 0 for c in counts), counts
    state = await probe.member(net.member_id)
    assert (state.balance, state.held, state.owed) == (0, 0, 0)
    assert await honored_points(db) == 150
    async with db.read() as conn:
        await assert_ledger_consistent(conn)
