"""The loader reads what the analyses need, one query per input, on both databases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from coalition.members.models import Member
from coalition.network.graphs import EARN, NETWORK, REDEEM
from coalition.network.loader import load_network


class Net:
    """Three shops (earn rate 1) and one member enrolled at the first."""

    def __init__(self, ledger: Any, a: Any, b: Any, c: Any, member_id: int, loyalty_id: str, make_member: Any):
        self.ledger, self.a, self.b, self.c = ledger, a, b, c
        self.member_id, self.loyalty_id, self.make_member = member_id, loyalty_id, make_member
        self.counter = 0

    def key(self) -> str:
        self.counter += 1
        return f"k-{self.counter}"

    async def earn(self, points: int, merchant: Any = None) -> Any:
        return await self.ledger.earn(merchant_id=(merchant or self.a).id, loyalty_id=self.loyalty_id,
                                      purchase_amount_minor=points * 100, idempotency_key=self.key())

    async def redeem(self, points: int, merchant: Any = None) -> Any:
        return await self.ledger.redeem(merchant_id=(merchant or self.b).id, loyalty_id=self.loyalty_id,
                                        points=points, idempotency_key=self.key())

    async def authorize(self, points: int, merchant: Any) -> Any:
        return await self.ledger.authorize(merchant_id=merchant.id, loyalty_id=self.loyalty_id, points=points,
                                           idempotency_key=self.key())

    async def new_member(self, merchant: Any) -> tuple[int, str]:
        enrolled = await self.make_member(merchant.id)
        return enrolled.member.id, enrolled.member.loyalty_id


@pytest.fixture
async def net(ledger: Any, make_merchant: Any, make_member: Any) -> Net:
    shops = [(await make_merchant(name)).merchant for name in ("Bakery", "Books", "Cafe")]
    enrolled = await make_member(shops[0].id)
    return Net(ledger, *shops, enrolled.member.id, enrolled.member.loyalty_id, make_member)


async def test_the_loader_reads_members_referrals_purchases_and_flows(net: Net, db: Any, clock: Any) -> None:
    referrer = await net.new_member(net.b)
    async with db.read() as conn:
        code = (await conn.execute(select(Member.referral_code).where(Member.id == referrer[0]))).scalar_one()
    referee = (await net.make_member(net.a.id, referral_code=code)).member
    earned = await net.earn(100)  # the first member, at A
    await net.redeem(40)  # at B
    refunded = await net.earn(7, net.c)
    await net.ledger.reverse(merchant_id=net.c.id, transaction_id=refunded.entry.id, idempotency_key="r")
    hold = await net.authorize(30, net.c)
    await net.ledger.capture(merchant_id=net.c.id, hold_id=hold.hold.id, points=20, idempotency_key="cap")
    await net.ledger.award_network_bonus(member_id=net.member_id, points=5, idempotency_key="bonus")
    await net.redeem(45, net.b)  # the earn's last 40 points, then 5 of the network's

    data = await load_network(db)

    assert [m.name for m in data.merchants] == ["Bakery", "Books", "Cafe"]
    assert sorted(data.members.ids.tolist()) == sorted([net.member_id, referrer[0], referee.id])
    assert data.enrolled_by[data.members.ids.tolist().index(referrer[0])] == net.b.id
    assert (data.referrals.referrer_ids.tolist(), data.referrals.referee_ids.tolist()) == ([referrer[0]], [referee.id])
    rows = sorted(zip(data.purchases.merchant_ids.tolist(), data.purchases.points.tolist(),
                      data.purchases.kinds.tolist(), strict=True))
    assert rows == sorted([(net.a.id, 100, EARN), (net.b.id, 40, REDEEM), (net.c.id, 20, REDEEM),
                           (net.b.id, 45, REDEEM)])
    assert data.purchases.amounts_minor[data.purchases.kinds == EARN].tolist() == [earned.entry.amount_minor]
    assert abs(int(data.purchases.times.min()) - int(clock.now.timestamp())) < 5
    flows = {(i, r): p for i, r, p in zip(data.flows.issuer_ids.tolist(), data.flows.redeemer_ids.tolist(),
                                          data.flows.points.tolist(), strict=True)}
    assert flows == {(net.a.id, net.b.id): 80, (net.a.id, net.c.id): 20, (NETWORK, net.b.id): 5}
    assert data.members.email_index.dtype == np.dtype(object)


async def test_an_empty_network_loads(db: Any) -> None:
    data = await load_network(db)
    assert len(data.members) == len(data.purchases) == len(data.referrals) == len(data.flows) == 0
