"""Fixtures for the gift card tests: three partners, the service on a clock the test moves, and a probe.

The ledger invariants (points and money) are checked after every test that uses ``gift``.
Every test that uses ``gift`` runs once per path, as the ledger's do (``tests/ledger/conftest.py``):
on PostgreSQL with the one-statement spend (``giftcards/fastpath.py``) on and off, on SQLite the
multi-statement path only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import DomainError
from coalition.giftcards.models import GiftCard, GiftEntry, GiftHold, GiftPosting
from coalition.giftcards.service import GiftCards, GiftResult
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.partners.models import Merchant

GIFT_TABLES = (GiftCard, GiftEntry, GiftPosting, GiftHold)
GIFT_PATHS = ("fast", "general") if os.environ.get("COALITION_TEST_DATABASE_URL") else ("general",)


@pytest.fixture(params=GIFT_PATHS)
def gift_path(request: pytest.FixtureRequest) -> str:
    """Which path spends and authorizations take: ``fast`` (PostgreSQL's one statement) or ``general``."""
    return str(request.param)


@pytest.fixture
async def gift(db: Database, settings: Settings, keys: NetworkKeys, clock: Any,
               gift_path: str) -> AsyncIterator[GiftCards]:
    service = GiftCards(db, settings, keys, clock=clock)
    service.fast_path = gift_path == "fast" and not db.is_sqlite
    yield service
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


@pytest.fixture
def expiring_settings(settings: Settings) -> Settings:
    return replace(settings, gift_card_expiry_days=30)


@dataclass
class Shops:
    gift: GiftCards
    a: Merchant
    b: Merchant
    c: Merchant
    counter: int = 0

    def key(self, prefix: str = "k") -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    async def issue(self, amount: int, merchant: Merchant | None = None) -> GiftResult:
        return await self.gift.issue(merchant_id=(merchant or self.a).id, amount_minor=amount,
                                     idempotency_key=self.key("issue"))

    async def spend(self, code: str, amount: int, merchant: Merchant | None = None,
                    key: str | None = None) -> GiftResult:
        merchant = merchant or self.b
        return await self.gift.redeem(merchant_id=merchant.id, caller_key=f"MERCHANT:{merchant.id}", code=code,
                                      amount_minor=amount, idempotency_key=key or self.key("spend"))


@pytest.fixture
async def shops(gift: GiftCards, make_merchant: Any) -> Shops:
    a = (await make_merchant("Bakery", 1, "food")).merchant
    b = (await make_merchant("Books", 2, "retail")).merchant
    c = (await make_merchant("Cafe", 1, "food")).merchant
    return Shops(gift, a, b, c)


class GiftProbe:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def snapshot(self) -> dict[str, Any]:
        async with self.db.read() as conn:
            counts = {t.__tablename__: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                      for t in GIFT_TABLES}
            cards = [tuple(r) for r in await conn.execute(
                select(GiftCard.id, GiftCard.balance_minor, GiftCard.held_minor, GiftCard.member_id)
                .order_by(GiftCard.id))]
            holds = [tuple(r) for r in await conn.execute(select(GiftHold.id, GiftHold.status).order_by(GiftHold.id))]
        return {"counts": counts, "cards": cards, "holds": holds}

    async def card(self, card_id: int) -> Any:
        async with self.db.read() as conn:
            return (await conn.execute(select(GiftCard).where(GiftCard.id == card_id))).one()

    async def unchanged(self, code: str, call: Callable[[], Awaitable[Any]]) -> DomainError:
        before = await self.snapshot()
        with pytest.raises(DomainError) as info:
            await call()
        assert info.value.code == code, repr(info.value)
        assert await self.snapshot() == before
        return info.value


@pytest.fixture
def gprobe(db: Database) -> GiftProbe:
    return GiftProbe(db)
