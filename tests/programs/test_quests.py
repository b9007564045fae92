"""Partner quests: visits within the window complete it once; the bonus is funded and settled as policy says."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from coalition.ledger.models import Account, Entry, EntryKind, Lot, Posting
from coalition.programs import quests
from coalition.programs.hooks import after_earn


async def quest(shops: Any, funding: str = "NETWORK", visits: int = 2, bonus: int = 100, window_days: int = 30,
                shop_list: Any = None) -> Any:
    members = shop_list or [shops.a, shops.b, shops.c]
    return await quests.create_quest(
        shops.ledger.db, name="Tour", merchant_ids=[m.id for m in members], visits_required=visits,
        window_days=window_days, bonus_points=bonus, funding=funding, starts_at=shops.now - dt.timedelta(days=1),
        ends_at=shops.now + dt.timedelta(days=60), idempotency_key=shops.key("q"), now=shops.now)


async def visit(shops: Any, member: Any, shop: Any) -> Any:
    result = await shops.earn(member, 10, shop)
    await after_earn(shops.ledger, result)
    return result


async def bonuses(db: Any, member: Any) -> list[tuple[int | None, int, int | None]]:
    async with db.read() as conn:
        return [tuple(r) for r in await conn.execute(
            select(Entry.merchant_id, Entry.points, Lot.issuer_merchant_id).join(Lot, Lot.entry_id == Entry.id)
            .where(Entry.member_id == member.id, Entry.kind == EntryKind.BONUS).order_by(Entry.merchant_id))]


def test_the_split_rounds_to_the_lowest_ids() -> None:
    assert quests.split_bonus(100, [7, 3, 5]) == [(3, 34), (5, 33), (7, 33)]
    assert quests.split_bonus(2, [9, 4, 6]) == [(4, 1), (6, 1)]
    assert sum(p for _, p in quests.split_bonus(1_000_000, list(range(1, 51)))) == 1_000_000


async def test_a_network_quest_pays_its_bonus_once(shops: Any, db: Any, tables: Any) -> None:
    q = await quest(shops, "NETWORK", visits=2, bonus=100)
    member = await shops.member()
    await visit(shops, member, shops.a)
    await visit(shops, member, shops.a)  # the same shop twice is one shop
    assert await bonuses(db, member) == []
    await visit(shops, member, shops.b)
    assert await bonuses(db, member) == [(None, 100, None)]
    await visit(shops, member, shops.c)
    assert await bonuses(db, member) == [(None, 100, None)]
    assert await tables.balance(member.id) == 40 + 100
    (row,) = await quests.member_quests(db, member_id=member.id, merchant_id=None, now=shops.now)
    assert row[0].id == q.id and row[1] == 2 and row[2] == shops.now


async def test_partner_funding_splits_and_settles_as_issuance(shops: Any, db: Any) -> None:
    await quest(shops, "PARTNERS", visits=3, bonus=100)
    member = await shops.member()
    for shop in (shops.a, shops.b, shops.c):
        await visit(shops, member, shop)
    got = await bonuses(db, member)
    assert got == [(shops.a.id, 34, shops.a.id), (shops.b.id, 33, shops.b.id), (shops.c.id, 33, shops.c.id)]
    async with db.read() as conn:  # each funder's ISSUED account carries its share: settlement charges it
        issued = dict((await conn.execute(
            select(Posting.account_id, Posting.points).join(Entry, Entry.id == Posting.entry_id)
            .where(Entry.kind == EntryKind.BONUS, Posting.account == Account.ISSUED))).all())
    assert issued == {shops.a.id: -34, shops.b.id: -33, shops.c.id: -33}


async def test_visits_outside_the_window_do_not_count(shops: Any, db: Any) -> None:
    await quest(shops, visits=2, window_days=7)
    member = await shops.member()
    await visit(shops, member, shops.a)
    shops.clock.advance(days=8)
    await visit(shops, member, shops.b)
    assert await bonuses(db, member) == []
    await visit(shops, member, shops.a)
    assert await bonuses(db, member) == [(None, 100, None)]


async def test_racing_visits_complete_the_quest_once(shops: Any, db: Any) -> None:
    await quest(shops, "PARTNERS", visits=2, bonus=10)
    member = await shops.member()
    await asyncio.gather(*(visit(shops, member, shop) for shop in (shops.a, shops.b, shops.c) * 3))
    assert sum(points for _, points, _ in await bonuses(db, member)) == 10


async def test_two_shops_visited_at_the_same_moment_complete_the_quest(shops: Any, db: Any) -> None:
    # Each visit's transaction must see the other's: without a lock per quest and member, on
    # PostgreSQL each counted one shop and neither completed the quest.
    await quest(shops, "NETWORK", visits=2, bonus=10)
    members = [await shops.member() for _ in range(12)]
    earns = [(await shops.earn(m, 10, shops.a), await shops.earn(m, 10, shops.b)) for m in members]
    await asyncio.gather(*(after_earn(shops.ledger, result) for pair in earns for result in pair))
    assert [await bonuses(db, m) for m in members] == [[(None, 10, None)]] * len(members)


@pytest.mark.parametrize(("fields", "code"), [
    ({"visits_required": 0}, "INVALID_QUEST"),
    ({"visits_required": 4}, "INVALID_QUEST"),
    ({"window_days": 0}, "INVALID_QUEST"),
    ({"window_days": 10**6}, "INVALID_QUEST"),
    ({"bonus_points": 0}, "INVALID_QUEST"),
    ({"bonus_points": -3}, "INVALID_QUEST"),
    ({"bonus_points": 2**40}, "INVALID_QUEST"),
    ({"funding": "SOMEONE"}, "INVALID_QUEST"),
    ({"merchant_ids": []}, "INVALID_QUEST"),
    ({"merchant_ids": [10**12, 10**12 + 1]}, "MERCHANT_NOT_FOUND"),
    ({"ends_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}, "INVALID_QUEST"),
])
async def test_bad_quests_write_nothing(shops: Any, tables: Any, fields: dict[str, Any], code: str) -> None:
    values = {"name": "Tour", "merchant_ids": [shops.a.id, shops.b.id, shops.c.id], "visits_required": 2,
              "window_days": 30, "bonus_points": 10, "funding": "NETWORK",
              "starts_at": shops.now, "ends_at": shops.now + dt.timedelta(days=30), "idempotency_key": "q"} | fields
    await tables.unchanged(code, lambda: quests.create_quest(shops.ledger.db, now=shops.now, **values))
