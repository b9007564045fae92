"""The dashboard read from the worker's rollup plus the tail is exactly the dashboard counted from every entry.

:func:`reference_dashboard` is the dashboard as it was computed before the rollup (every entry of
the merchant, each time). Random entries (every kind, several merchants, the network's own, dates
backdated over twenty weeks and in the current week, some on a week's first and last instant) are
written in rounds; between rounds the rollup runs at random moments (before its pending id is
GRACE old, and after) in random step sizes; after each, every merchant's dashboard must be the
reference's. Then: two workers rolling up at once add nothing twice; a write in flight with an id
below the one the rollup noted is counted once when it commits, and not at all when it rolls back;
an import in flight keeps the rollup from noting an id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import case, func, insert, or_, select

from coalition.console.dashboard import WEEKS, Dashboard, Week, _rate, merchant_dashboard
from coalition.console.rollup import GRACE, read_mark, roll_up
from coalition.db import Database, utcnow
from coalition.ledger.long_writes import announce_long_write
from coalition.ledger.models import Entry, EntryKind, Lot
from coalition.members.models import Member

KINDS = [EntryKind.EARN] * 5 + [EntryKind.REDEEM] * 3 + [EntryKind.REVERSAL, EntryKind.ADJUSTMENT, EntryKind.HOLD,
                                                          EntryKind.BONUS]


async def reference_dashboard(db: Database, merchant_id: int, *, now: dt.datetime) -> Dashboard:
    """The dashboard counted from every entry (the code before the rollup, kept as the reference)."""
    monday = (now - dt.timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [monday - dt.timedelta(weeks=WEEKS - 1 - i) for i in range(WEEKS)]
    bounds = [*starts, monday + dt.timedelta(weeks=1)]
    earn, redeem = Entry.kind == EntryKind.EARN, Entry.kind == EntryKind.REDEEM
    per_member = (select(Entry.member_id, func.sum(case((earn, 1), else_=0)).label("earns"),
                         func.sum(case((earn, Entry.points), else_=0)).label("issued"),
                         func.sum(case((redeem, -Entry.points), else_=0)).label("honored"))
                  .where(Entry.merchant_id == merchant_id).group_by(Entry.member_id).subquery())
    week = case(*[(Entry.created_at < bounds[i + 1], i) for i in range(WEEKS)], else_=WEEKS).label("week")
    weekly = (select(week, Entry.kind, func.sum(Entry.points))
              .where(Entry.merchant_id == merchant_id, Entry.created_at >= bounds[0], or_(earn, redeem))
              .group_by(week, Entry.kind))
    served = select(Entry.id).where(Entry.merchant_id == merchant_id, Entry.member_id == Member.id)
    async with db.read() as conn:
        row = (await conn.execute(select(
            func.count(), func.coalesce(func.sum(case((per_member.c.earns >= 1, 1), else_=0)), 0),
            func.coalesce(func.sum(case((per_member.c.earns >= 2, 1), else_=0)), 0),
            func.coalesce(func.sum(per_member.c.issued), 0), func.coalesce(func.sum(per_member.c.honored), 0)))).one()
        sums = {(int(i), EntryKind(kind)): int(points) for i, kind, points in (await conn.execute(weekly)).all()}
        enrolled_only = (await conn.execute(select(func.count()).select_from(Member).where(
            Member.enrolled_by_merchant_id == merchant_id, ~served.exists()))).scalar_one()
        outstanding = (await conn.execute(select(func.coalesce(func.sum(Lot.remaining), 0)).where(
            Lot.issuer_merchant_id == merchant_id, Lot.expires_at > now))).scalar_one()
    served_members, buyers, repeat, issued, honored = (int(v) for v in row[:5])
    weeks = [Week(starts[i], sums.get((i, EntryKind.EARN), 0), -sums.get((i, EntryKind.REDEEM), 0))
             for i in range(WEEKS)]
    return Dashboard(served_members + int(enrolled_only), issued, honored, int(outstanding), _rate(honored, issued),
                     _rate(repeat, buyers), weeks)


def random_entry(rng: random.Random, shops: list[int], members: list[int], now: dt.datetime) -> dict[str, Any]:
    kind = rng.choice(KINDS)
    monday = (now - dt.timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    when = rng.choice([
        now - dt.timedelta(seconds=rng.randint(0, 140 * 86400)),  # twenty weeks back, beyond the chart
        now - dt.timedelta(seconds=rng.randint(0, 3 * 86400)),  # this week (or the end of the last)
        monday - dt.timedelta(weeks=rng.randint(0, 13)),  # a week's first instant
        monday - dt.timedelta(weeks=rng.randint(0, 13), microseconds=1),  # the previous week's last
    ])
    points = rng.randint(1, 500)
    return {"kind": kind, "member_id": rng.choice(members), "merchant_id": rng.choice([*shops, None]),
            "points": -points if kind == EntryKind.REDEEM else points, "created_at": when}


async def write(db: Database, rows: list[dict[str, Any]]) -> None:
    if rows:
        async with db.transaction() as conn:
            await conn.execute(insert(Entry), rows)


async def assert_exact(db: Database, shops: list[int], now: dt.datetime) -> None:
    for shop in shops:
        assert await merchant_dashboard(db, shop, now=now) == await reference_dashboard(db, shop, now=now), shop


async def count_entries(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(Entry))).scalar_one())


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_rollup_plus_the_tail_is_the_dashboard_counted_from_every_entry(
        seed: int, db: Database, make_merchant: Any, make_member: Any) -> None:
    rng = random.Random(seed)
    shops = [(await make_merchant(f"Shop {i}")).merchant.id for i in range(4)]
    members = [(await make_member(shops[i % 4])).member.id for i in range(9)]  # shop 4's: enrolled, never served
    active = shops[:3]
    view = dt.datetime(2026, 3, 11, 15, 30, tzinfo=dt.UTC)  # a Wednesday
    worker_now = utcnow()
    rolled = 0
    for _ in range(8):
        await write(db, [random_entry(rng, active, members, view) for _ in range(rng.randint(0, 40))])
        for _ in range(rng.randint(1, 3)):
            worker_now += rng.choice([dt.timedelta(seconds=30), GRACE / 2, GRACE, GRACE + dt.timedelta(minutes=3)])
            rolled += await roll_up(db, worker_now, step=rng.randint(1, 25))
            await assert_exact(db, shops, view)
            await assert_exact(db, shops, view + dt.timedelta(weeks=rng.randint(1, 3)))
    for _ in range(3):  # every entry is rolled up in the end, once
        worker_now += GRACE
        rolled += await roll_up(db, worker_now)
    async with db.read() as conn:
        mark = await read_mark(conn)
        top = (await conn.execute(select(func.max(Entry.id)))).scalar_one()
    assert mark.rolled_through_id == top and rolled == await count_entries(db)
    await write(db, [random_entry(rng, active, members, view) for _ in range(20)])  # and a tail after it
    await assert_exact(db, shops, view)
    busy = await merchant_dashboard(db, shops[0], now=view)
    assert busy.points_issued and busy.points_honored and busy.repeat_rate and any(w.issued for w in busy.weeks)


async def test_a_pending_id_is_not_rolled_up_before_it_is_grace_old(
        db: Database, make_merchant: Any, make_member: Any) -> None:
    shop = (await make_merchant("Shop")).merchant.id
    member = (await make_member(shop)).member.id
    now = utcnow()
    await write(db, [{"kind": EntryKind.EARN, "member_id": member, "merchant_id": shop, "points": 10}])
    assert await roll_up(db, now) == 0  # notes the id
    assert await roll_up(db, now + GRACE - dt.timedelta(seconds=1)) == 0
    async with db.read() as conn:
        assert (await read_mark(conn)).rolled_through_id == 0
    assert await roll_up(db, now + GRACE) == 1
    async with db.read() as conn:
        assert (await read_mark(conn)).rolled_through_id == 1
    assert (await merchant_dashboard(db, shop)).points_issued == 10


async def test_two_workers_rolling_up_at_once_add_each_entry_once(
        db: Database, settings: Any, make_merchant: Any, make_member: Any) -> None:
    rng = random.Random(7)
    shops = [(await make_merchant(f"Shop {i}")).merchant.id for i in range(2)]
    members = [(await make_member(shops[0])).member.id for _ in range(4)]
    view = utcnow()
    await write(db, [random_entry(rng, shops, members, view) for _ in range(300)])
    now = utcnow()
    await roll_up(db, now)  # notes the pending id
    workers = [Database(settings.database_url, pool_size=2) for _ in range(2)]
    try:
        counts = await asyncio.gather(*(roll_up(w, now + GRACE, step=7) for w in workers))
    finally:
        for w in workers:
            await w.dispose()
    assert sum(counts) == 300
    async with db.read() as conn:
        assert (await read_mark(conn)).rolled_through_id == 300
    await assert_exact(db, shops, view)


async def _held_open(db: Database, row: dict[str, Any], written: asyncio.Event, finish: asyncio.Event,
                     commit: bool) -> None:
    class RolledBack(Exception):
        pass

    try:
        async with db.transaction() as conn:
            await conn.execute(insert(Entry), [row])
            written.set()
            await finish.wait()
            if not commit:
                raise RolledBack
    except RolledBack:
        pass


async def test_a_write_in_flight_below_the_noted_id_counts_once_when_it_commits_and_never_when_it_rolls_back(
        db: Database, make_merchant: Any, make_member: Any) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has one writer at a time: no id is ever in flight below a visible one")
    shop = (await make_merchant("Shop")).merchant.id
    member = (await make_member(shop)).member.id
    view = utcnow()

    def earn(points: int) -> dict[str, Any]:
        return {"kind": EntryKind.EARN, "member_id": member, "merchant_id": shop, "points": points}

    await write(db, [earn(1)])
    finish = asyncio.Event()
    committed_written, rolled_back_written = asyncio.Event(), asyncio.Event()
    committing = asyncio.create_task(_held_open(db, earn(10), committed_written, finish, commit=True))
    rolling_back = asyncio.create_task(_held_open(db, earn(100), rolled_back_written, finish, commit=False))
    await committed_written.wait()
    await rolled_back_written.wait()
    await write(db, [earn(1000)])  # the largest id, visible while the two below it are in flight
    now = utcnow()
    assert await roll_up(db, now) == 0
    async with db.read() as conn:
        noted = await read_mark(conn)
        top = (await conn.execute(select(func.max(Entry.id)))).scalar_one()
    assert noted.pending_id == top and noted.rolled_through_id == 0
    assert await roll_up(db, now + GRACE / 2) == 0  # not GRACE old: the writes in flight may still commit
    assert (await merchant_dashboard(db, shop, now=view)).points_issued == 1001
    finish.set()
    await asyncio.gather(committing, rolling_back)
    assert (await merchant_dashboard(db, shop, now=view)).points_issued == 1011
    assert await roll_up(db, now + GRACE) == 3  # the committed one is rolled up with the others
    async with db.read() as conn:
        assert (await read_mark(conn)).rolled_through_id == top
    await write(db, [earn(10000)])
    assert (await merchant_dashboard(db, shop, now=view)).points_issued == 11011
    await assert_exact(db, [shop], view)


async def test_a_long_write_in_flight_keeps_the_rollup_from_noting_an_id(
        db: Database, make_merchant: Any, make_member: Any) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite: the long write holds the write lock, and its ids are above every visible one")
    shop = (await make_merchant("Shop")).merchant.id
    member = (await make_member(shop)).member.id
    await write(db, [{"kind": EntryKind.EARN, "member_id": member, "merchant_id": shop, "points": 5}])
    async with db.transaction() as conn:
        await announce_long_write(conn)
        assert await roll_up(db, utcnow()) == 0
        async with db.read() as other:
            assert (await read_mark(other)).pending_id is None  # nothing noted while the import runs
    now = utcnow()
    await roll_up(db, now)
    async with db.read() as conn:
        assert (await read_mark(conn)).pending_id == 1
    assert await roll_up(db, now + GRACE) == 1
