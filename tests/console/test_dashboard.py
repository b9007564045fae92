"""The console's figures against brute force: every entry, member and lot read back and counted in Python.

Three merchants, members enrolled by each (some never served, some served elsewhere too),
earns and redemptions spread over twenty weeks, a reversal; the dashboard's totals, weeks,
members, repeat-visit rate and outstanding points, and the customers' keyset pages, must be
what counting the rows by hand gives.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from coalition.console.dashboard import WEEKS, merchant_customers, merchant_dashboard
from coalition.errors import DomainError
from coalition.ledger.models import Entry, EntryKind, Lot
from coalition.members.models import Member


async def activity(seed: int, ledger: Any, clock: Any, make_merchant: Any, make_member: Any) -> list[int]:
    rng = random.Random(seed)
    shops = [(await make_merchant(f"Shop {i}", 1)).merchant for i in range(3)]
    members = [(await make_member(shops[i % 3].id)).member for i in range(10)]
    key = iter(range(10**6))
    earned = []
    for _ in range(70):
        clock.advance(hours=rng.randint(1, 60))
        shop, member = rng.choice(shops[:2]), rng.choice(members[:8])  # shop 3 and members 9, 10: enrolled only
        try:
            if rng.random() < 0.65:
                result = await ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id,
                                           purchase_amount_minor=rng.randint(100, 5000),
                                           idempotency_key=f"e{next(key)}")
                earned.append(result.entry)
            else:
                await ledger.redeem(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=rng.randint(1, 30),
                                    idempotency_key=f"r{next(key)}")
        except DomainError:  # not enough points: nothing written
            pass
    last = earned[-1]
    await ledger.reverse(merchant_id=last.merchant_id, transaction_id=last.id, idempotency_key="reverse")
    return [shop.id for shop in shops]


async def brute_force(db: Any, merchant_id: int, now: dt.datetime) -> dict[str, Any]:
    async with db.read() as conn:
        entries = (await conn.execute(select(Entry.member_id, Entry.merchant_id, Entry.kind, Entry.points,
                                             Entry.created_at))).all()
        members = (await conn.execute(select(Member.id, Member.enrolled_by_merchant_id))).all()
        lots = (await conn.execute(select(Lot.issuer_merchant_id, Lot.remaining, Lot.expires_at))).all()
    here = [e for e in entries if e.merchant_id == merchant_id]
    earns = Counter(e.member_id for e in here if EntryKind(e.kind) == EntryKind.EARN)
    monday = (now - dt.timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    weeks = []
    for i in range(WEEKS):
        start = monday - dt.timedelta(weeks=WEEKS - 1 - i)
        inside = [e for e in here if start <= e.created_at.replace(tzinfo=dt.UTC) < start + dt.timedelta(weeks=1)]
        weeks.append((start, sum(e.points for e in inside if EntryKind(e.kind) == EntryKind.EARN),
                      -sum(e.points for e in inside if EntryKind(e.kind) == EntryKind.REDEEM)))
    issued = sum(e.points for e in here if EntryKind(e.kind) == EntryKind.EARN)
    honored = -sum(e.points for e in here if EntryKind(e.kind) == EntryKind.REDEEM)
    return {
        "members": len({m.id for m in members if m.enrolled_by_merchant_id == merchant_id}
                       | {e.member_id for e in here}),
        "issued": issued, "honored": honored,
        "outstanding": sum(lot.remaining for lot in lots if lot.issuer_merchant_id == merchant_id
                           and lot.expires_at.replace(tzinfo=dt.UTC) > now),
        "buyers": len(earns), "repeat": sum(1 for n in earns.values() if n >= 2), "weeks": weeks,
        "customers": sorted({m.id for m in members if m.enrolled_by_merchant_id == merchant_id}
                            | {e.member_id for e in here}),
        "visits": earns,
    }


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_dashboard_and_customers_are_what_counting_by_hand_gives(
        seed: int, db: Any, ledger: Any, clock: Any, make_merchant: Any, make_member: Any) -> None:
    shops = await activity(seed, ledger, clock, make_merchant, make_member)
    for now in (clock(), clock() + dt.timedelta(days=400)):  # the second: every lot has expired
        for merchant_id in shops:
            expected = await brute_force(db, merchant_id, now)
            figures = await merchant_dashboard(db, merchant_id, now=now)
            assert figures.members == expected["members"]
            assert (figures.points_issued, figures.points_honored) == (expected["issued"], expected["honored"])
            assert figures.outstanding == expected["outstanding"]
            repeat = Decimal(expected["repeat"]) / Decimal(expected["buyers"]) if expected["buyers"] else Decimal(0)
            assert figures.repeat_rate == repeat.quantize(Decimal("0.0001"))
            assert [(w.start, w.issued, w.honored) for w in figures.weeks] == expected["weeks"]
            pages, after = [], None
            while page := await merchant_customers(db, merchant_id, after_id=after, limit=3):
                pages.extend(page)
                after = page[-1].member_id
            assert [c.member_id for c in pages] == expected["customers"]
            assert {c.member_id: c.visits for c in pages} == {m: expected["visits"].get(m, 0)
                                                              for m in expected["customers"]}
    busy = await brute_force(db, shops[0], clock())
    assert busy["issued"] > 0 and busy["honored"] > 0 and busy["repeat"] > 0 and any(w[1] for w in busy["weeks"])
    assert (await merchant_dashboard(db, shops[2])).points_issued == 0  # enrolled only
