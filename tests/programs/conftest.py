"""Fixtures for the programs tests: shops, members with points, and the ledger invariants after each test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.config import Settings
from coalition.db import Database
from coalition.errors import DomainError
from coalition.ledger.models import Allocation, Entry, Lot, Posting
from coalition.ledger.service import Ledger
from coalition.members.models import Member
from coalition.programs.reward_models import Reward, Stamp, StampProgress, Voucher

TABLES = (Entry, Posting, Lot, Allocation, Reward, Voucher, Stamp, StampProgress)


@dataclass
class Shops:
    ledger: Ledger
    settings: Settings
    clock: Any
    a: Any
    b: Any
    c: Any
    make_member: Callable[..., Any]
    counter: int = 0

    def key(self, prefix: str = "k") -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    @property
    def now(self) -> dt.datetime:
        return self.clock.now  # type: ignore[no-any-return]

    async def member(self, shop: Any = None) -> Any:
        return (await self.make_member((shop or self.a).id)).member

    async def earn(self, member: Any, points: int, shop: Any = None) -> Any:
        """An earn of ``points`` at ``shop`` (earn rate 1: one point per currency unit)."""
        shop = shop or self.a
        unit = 10**self.settings.currency_exponent
        amount = -(-points * unit // shop.earn_rate_points_per_unit)
        return await self.ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id,
                                      purchase_amount_minor=amount, idempotency_key=self.key("earn"))


@pytest.fixture
async def shops(ledger: Ledger, settings: Settings, clock: Any, make_merchant: Any, make_member: Any) -> Shops:
    a = (await make_merchant("Bakery", 1, "food")).merchant
    b = (await make_merchant("Books", 1, "retail")).merchant
    c = (await make_merchant("Cafe", 1, "food")).merchant
    return Shops(ledger=ledger, settings=settings, clock=clock, a=a, b=b, c=c, make_member=make_member)


class Tables:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def snapshot(self) -> dict[str, Any]:
        async with self.db.read() as conn:
            counts = {t.__tablename__: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                      for t in TABLES}
            members = [tuple(r) for r in await conn.execute(
                select(Member.id, Member.balance, Member.held, Member.owed).order_by(Member.id))]
            stock = [tuple(r) for r in await conn.execute(select(Reward.id, Reward.stock_left).order_by(Reward.id))]
            vouchers = [tuple(r) for r in await conn.execute(select(Voucher.id, Voucher.status).order_by(Voucher.id))]
        return {"counts": counts, "members": members, "stock": stock, "vouchers": vouchers}

    async def unchanged(self, code: str, call: Callable[[], Awaitable[Any]]) -> DomainError:
        before = await self.snapshot()
        with pytest.raises(DomainError) as info:
            await call()
        assert info.value.code == code, repr(info.value)
        assert await self.snapshot() == before
        return info.value

    async def balance(self, member_id: int) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(select(Member.balance).where(Member.id == member_id))).scalar_one())


@pytest.fixture
def tables(db: Database) -> Tables:
    return Tables(db)
