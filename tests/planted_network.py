"""A small network with known answers, built through the real services (tests/network, tests/graphql).

- Honest shops A, B, C, D; 110 honest members, each buying at two of them and spending points
  at a third a few days later.
- A collusion pair X → Y: 12 members enrolled at X earn only at X and redeem only at Y within
  the hour.
- A sybil farm: member S (enrolled at A) refers 12 members within an hour; none of them buys.
- An honest referrer H (enrolled at B) refers 3 members who buy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.service import Ledger
from coalition.members.service import enroll_member
from coalition.partners.service import onboard_merchant


@dataclass
class Planted:
    shops: dict[str, Any] = field(default_factory=dict)  # name -> Merchant
    keys: dict[str, str] = field(default_factory=dict)  # name -> API key
    members: dict[int, str] = field(default_factory=dict)  # member id -> enrolling shop name
    loyalty: dict[int, str] = field(default_factory=dict)  # member id -> loyalty ID
    colluders: list[int] = field(default_factory=list)
    sybil_referrer: int = 0
    sybils: list[int] = field(default_factory=list)
    honest_referrer: int = 0


async def build_planted(db: Database, keys: NetworkKeys, ledger: Ledger, clock: Any) -> Planted:
    net = Planted()
    for name in ("A", "B", "C", "D", "X", "Y"):
        onboarded = await onboard_merchant(db, name=f"Shop {name}", category="test", earn_rate_points_per_unit=1)
        net.shops[name], net.keys[name] = onboarded.merchant, onboarded.api_key
    counter = iter(range(1, 10_000))

    async def enroll(shop: str, code: str | None = None, now: dt.datetime | None = None) -> Any:
        member = (await enroll_member(db, keys, merchant_id=net.shops[shop].id, idempotency_key=f"e{next(counter)}",
                                      referral_code=code, referral_daily_limit=100, now=now or clock.now)).member
        net.members[member.id] = shop
        net.loyalty[member.id] = member.loyalty_id
        return member

    async def earn(member: Any, shop: str, amount: int = 3000) -> None:
        await ledger.earn(merchant_id=net.shops[shop].id, loyalty_id=member.loyalty_id,
                          purchase_amount_minor=amount, idempotency_key=f"p{next(counter)}")

    async def redeem(member: Any, shop: str, points: int = 10) -> None:
        await ledger.redeem(merchant_id=net.shops[shop].id, loyalty_id=member.loyalty_id, points=points,
                            idempotency_key=f"p{next(counter)}")

    honest = ["A", "B", "C", "D"]
    people = []
    for i in range(110):
        home = honest[i % 4]
        people.append((await enroll(home), home, honest[(i + 1) % 4], honest[(i + 2) % 4]))
    for member, home, second, _ in people:
        await earn(member, home)
        clock.advance(minutes=7)
        await earn(member, second)
    clock.advance(days=3)
    for member, _, _, elsewhere in people:
        await redeem(member, elsewhere)
        clock.advance(minutes=3)

    for _ in range(12):
        member = await enroll("X")
        net.colluders.append(member.id)
        await earn(member, "X", 5000)
        clock.advance(minutes=10)
        await redeem(member, "Y", 40)

    referrer = await enroll("A")
    net.sybil_referrer = referrer.id
    for _ in range(12):
        clock.advance(minutes=3)
        net.sybils.append((await enroll("A", referrer.referral_code)).id)

    helper = await enroll("B")
    net.honest_referrer = helper.id
    for shop in ("B", "C", "B"):
        clock.advance(days=2)
        friend = await enroll(shop, helper.referral_code)
        await earn(friend, shop)
    clock.advance(hours=1)
    return net


async def forget_cached_insights(redis_url: str | None) -> None:
    """Tests truncate the database between them; the Redis cache of insights must go too (and the
    per-merchant lookup counters: merchant ids start again at 1)."""
    if redis_url is None:
        return
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.from_url(redis_url)
    try:
        keys = [key for pattern in ("coalition:insights:*", "coalition:jobs:*", "coalition:lookup:*")
                async for key in client.scan_iter(pattern)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
