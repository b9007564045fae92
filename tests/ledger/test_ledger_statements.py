"""The ledger's prebuilt statements (coalition.ledger.core): built once, and FIFO lots read only as far as needed."""

from __future__ import annotations

from typing import Any

import pytest

from coalition.ledger import core
from coalition.ledger.models import EntryKind


async def open_lot_points(db: Any, member_id: int, points: int) -> list[int]:
    async with db.transaction() as conn:
        return [remaining for _, _, remaining in await core.open_lots(conn, member_id, points)]


async def test_open_lots_stops_at_the_lot_that_covers_the_points(net: Any, db: Any, clock: Any) -> None:
    # given four lots, each expiring a day after the one before
    for points in (10, 20, 30, 40):
        await net.earn(points)
        clock.advance(days=1)

    # then a redemption reads the lots in FIFO order up to the first that covers it
    assert await open_lot_points(db, net.member_id, 1) == [10]
    assert await open_lot_points(db, net.member_id, 10) == [10]
    assert await open_lot_points(db, net.member_id, 25) == [10, 20]
    assert await open_lot_points(db, net.member_id, 31) == [10, 20, 30]
    assert await open_lot_points(db, net.member_id, 100) == [10, 20, 30, 40]
    # and every lot when they cannot cover it (take_fifo then reports the disagreement)
    assert await open_lot_points(db, net.member_id, 101) == [10, 20, 30, 40]


async def test_open_lots_skips_spent_lots_and_breaks_expiry_ties_by_id(net: Any, db: Any) -> None:
    # given three lots expiring at the same instant, the first partly and then fully spent
    for points in (10, 20, 30):
        await net.earn(points)
    await net.redeem(4)
    assert await open_lot_points(db, net.member_id, 7) == [6, 20]
    await net.redeem(6)

    # then the spent lot is not read, and the others come in id order
    assert await open_lot_points(db, net.member_id, 21) == [20, 30]


async def test_open_lots_walks_the_open_lots_index_without_scanning_every_lot(db: Any) -> None:
    # SQLite's EXPLAIN QUERY PLAN names each step; the statement's parameters are written in
    if not db.is_sqlite:
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    statement = core._open_lots.params(l_member_id=1, l_points=25)
    async with db.read() as conn:
        sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        plan = [row[3] for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    assert sum("USING INDEX ix_lots_open" in step for step in plan) == 2, plan  # the first lot, and each next
    assert not any(step.startswith("SCAN lots") for step in plan), plan


async def test_redeem_across_many_lots_takes_exactly_the_points(net: Any, probe: Any) -> None:
    for _ in range(25):
        await net.earn(4)

    result = await net.redeem(42)

    allocations = await probe.allocations(result.entry.id)
    assert [a.points for a in allocations] == [4] * 10 + [2]
    assert result.member.balance == 58


async def test_entry_statements_are_built_once_per_shape(net: Any) -> None:
    await net.earn(5)
    await net.redeem(1)
    built = core._entry_insert.cache_info().misses

    await net.earn(7)
    await net.redeem(2)

    assert core._entry_insert.cache_info().misses == built


@pytest.mark.parametrize("members", [{}, {"member_id": 1, "loyalty_id": "LX"}])
async def test_insert_entry_takes_exactly_one_member_reference(db: Any, clock: Any, members: dict[str, Any]) -> None:
    async with db.transaction() as conn:
        with pytest.raises(TypeError, match="exactly one of member_id and loyalty_id"):
            await core.insert_entry(conn, kind=EntryKind.BONUS, merchant_id=None, points=1, now=clock(),
                                    idempotency_key=None, request_hash=None, **members)
