"""Fixtures for settlement tests: three shops, a member, and a settle() that runs on the test clock.

``shops.earn(points, at)``, ``shops.redeem(points, at)`` and ``shops.reverse(entry, at)``
drive the ledger; ``shops.settle()`` closes a batch at the clock's time (one hour on, so
every entry so far is before the period end).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import DomainError
from coalition.ledger.service import Ledger
from coalition.partners.models import Merchant
from coalition.settlement.service import RunResult, batch_lines, batch_positions, run_settlement


@dataclass
class Shops:
    db: Database
    settings: Settings
    keys: NetworkKeys
    ledger: Ledger
    clock: Any
    a: Merchant
    b: Merchant
    c: Merchant
    loyalty_id: str
    make_member: Callable[..., Any]
    counter: int = 0
    runs: list[RunResult] = field(default_factory=list)

    def __repr__(self) -> str:  # hypothesis prints the fixture with a failing example
        return f"Shops(a={self.a.id}, b={self.b.id}, c={self.c.id})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    async def earn(self, points: int, at: Merchant, loyalty_id: str | None = None) -> Any:
        unit = 10**self.settings.currency_exponent
        result = await self.ledger.earn(merchant_id=at.id, loyalty_id=loyalty_id or self.loyalty_id,
                                        purchase_amount_minor=-(-points * unit // at.earn_rate_points_per_unit),
                                        idempotency_key=self.key("earn"))
        assert result.entry.points == points
        return result.entry

    async def redeem(self, points: int, at: Merchant, loyalty_id: str | None = None) -> Any:
        result = await self.ledger.redeem(merchant_id=at.id, loyalty_id=loyalty_id or self.loyalty_id, points=points,
                                          idempotency_key=self.key("redeem"))
        return result.entry

    async def reverse(self, entry: Any) -> Any:
        result = await self.ledger.reverse(merchant_id=entry.merchant_id, transaction_id=entry.id,
                                           idempotency_key=self.key("reverse"))
        return result.entry

    async def settle(self, key: str | None = None, period_end: dt.datetime | None = None) -> RunResult:
        self.clock.advance(hours=1)
        result = await run_settlement(self.db, self.settings, self.keys, period_end=period_end or self.clock(),
                                      idempotency_key=key or self.key("settle"), now=self.clock())
        self.clock.advance(hours=1)
        self.runs.append(result)
        return result

    async def probe_error(self, call: Awaitable[Any], code: str) -> DomainError:
        with pytest.raises(DomainError) as info:
            await call
        assert info.value.code == code, repr(info.value)
        return info.value

    async def positions(self, batch_id: int) -> dict[int, int]:
        return {p.merchant_id: p.net_minor for p in await batch_positions(self.db, batch_id)}

    async def lines(self, batch_id: int) -> list[Any]:
        return await batch_lines(self.db, batch_id)

    async def row_counts(self, *tables: Any) -> dict[str, int]:
        """Rows per table: what a read-only call or a refusal must leave as it was."""
        async with self.db.read() as conn:
            return {t.__tablename__: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                    for t in tables}

    async def worked_example_activity(self) -> None:
        """Batch 1 of test_worked_example.py: A issues 100, B 50; C honors 30, B 80 and A 5."""
        await self.earn(100, self.a)
        self.clock.advance(minutes=1)
        await self.earn(50, self.b)
        await self.redeem(30, self.c)
        await self.redeem(80, self.b)
        await self.redeem(5, self.a)


@pytest.fixture
async def shops(db: Database, settings: Settings, keys: NetworkKeys, ledger: Ledger, clock: Any,
                make_merchant: Any, make_member: Any) -> Shops:
    a = (await make_merchant("Bakery", 1)).merchant
    b = (await make_merchant("Books", 1)).merchant
    c = (await make_merchant("Cafe", 1)).merchant
    enrolled = await make_member(a.id)
    return Shops(db=db, settings=settings, keys=keys, ledger=ledger, clock=clock, a=a, b=b, c=c,
                 loyalty_id=enrolled.member.loyalty_id, make_member=make_member)
