"""Fixtures for the ledger tests: a small network and a probe that reads the tables directly.

Every ledger test runs once per path: on PostgreSQL with the one-statement fast path on
(``ledger/fastpath.py``) and off (the multi-statement path alone), on SQLite only the latter,
which is all SQLite has. A module that is about one path overrides ``ledger_path``.

``probe.unchanged(code, call)`` is the "a refusal changes nothing" check every error test
uses: it snapshots the ledger tables and every member's columns, runs the call, checks the
error code and compares the snapshot.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.config import Settings
from coalition.db import Database
from coalition.errors import DomainError
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Allocation, Entry, Hold, Lot, Posting
from coalition.ledger.service import Ledger
from coalition.members.models import Member
from coalition.partners.models import Merchant

LEDGER_TABLES = (Entry, Posting, Lot, Allocation, Hold)
LEDGER_PATHS = ("fast", "general") if os.environ.get("COALITION_TEST_DATABASE_URL") else ("general",)


@pytest.fixture(params=LEDGER_PATHS)
def ledger_path(request: pytest.FixtureRequest) -> str:
    """Which path plain earns and redemptions take: ``fast`` (PostgreSQL's one statement) or ``general``."""
    return str(request.param)


@pytest.fixture
async def ledger(db: Database, settings: Settings, clock: Any, ledger_path: str) -> AsyncIterator[Ledger]:
    """The ledger service on the path ``ledger_path`` names; the invariants are checked after every test."""
    service = Ledger(db, settings, clock=clock)
    service.fast_path = ledger_path == "fast" and not db.is_sqlite
    yield service
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


@dataclass(frozen=True)
class MemberState:
    balance: int
    held: int
    owed: int
    lifetime_points: int


class Probe:
    """Reads the ledger tables behind the service's back."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def counts(self) -> dict[str, int]:
        async with self.db.read() as conn:
            return {
                table.__tablename__: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                for table in LEDGER_TABLES
            }

    async def snapshot(self) -> dict[str, Any]:
        """Row counts plus every mutable column of the ledger: members, lots, holds."""
        counts = await self.counts()
        async with self.db.read() as conn:
            members = [tuple(r) for r in await conn.execute(
                select(Member.id, Member.balance, Member.held, Member.owed, Member.lifetime_points)
                .order_by(Member.id))]
            lots = [tuple(r) for r in await conn.execute(
                select(Lot.id, Lot.remaining, Lot.reversed).order_by(Lot.id))]
            holds = [tuple(r) for r in await conn.execute(
                select(Hold.id, Hold.status, Hold.captured_points, Hold.closed_at).order_by(Hold.id))]
        return {"counts": counts, "members": members, "lots": lots, "holds": holds}

    async def member(self, member_id: int) -> MemberState:
        async with self.db.read() as conn:
            row = (await conn.execute(
                select(Member.balance, Member.held, Member.owed, Member.lifetime_points)
                .where(Member.id == member_id))).one()
        return MemberState(*row)

    async def lots(self, member_id: int) -> list[Any]:
        async with self.db.read() as conn:
            return list(await conn.execute(select(Lot).where(Lot.member_id == member_id).order_by(Lot.id)))

    async def lot_for(self, entry_id: int) -> Any:
        async with self.db.read() as conn:
            return (await conn.execute(select(Lot).where(Lot.entry_id == entry_id))).one_or_none()

    async def allocations(self, entry_id: int) -> list[Any]:
        async with self.db.read() as conn:
            return list(await conn.execute(
                select(Allocation).where(Allocation.entry_id == entry_id).order_by(Allocation.id)))

    async def postings(self, entry_id: int) -> dict[tuple[str, int | None], int]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(Posting.account, Posting.account_id, Posting.points).where(Posting.entry_id == entry_id))
            return {(str(r.account), r.account_id): r.points for r in rows}

    async def entries(self, **where: Any) -> list[Any]:
        query = select(Entry).order_by(Entry.id)
        for column, value in where.items():
            query = query.where(getattr(Entry, column) == value)
        async with self.db.read() as conn:
            return list(await conn.execute(query))

    async def hold(self, hold_id: int) -> Any:
        async with self.db.read() as conn:
            return (await conn.execute(select(Hold).where(Hold.id == hold_id))).one()

    async def error(self, call: Awaitable[Any], code: str, field: str | None = None) -> DomainError:
        with pytest.raises(DomainError) as info:
            await call
        assert info.value.code == code, repr(info.value)
        if field is not None:
            assert info.value.field == field, repr(info.value)
        return info.value

    async def unchanged(self, code: str, call: Callable[[], Awaitable[Any]], field: str | None = None) -> DomainError:
        """The call is refused with ``code`` and leaves every ledger table and member as it was."""
        before = await self.snapshot()
        error = await self.error(call(), code, field)
        assert await self.snapshot() == before
        return error


@pytest.fixture
def probe(db: Database) -> Probe:
    return Probe(db)


@dataclass
class Network:
    """Three partners (earn rates 1, 2, 1) and one member enrolled at the first."""

    ledger: Ledger
    settings: Settings
    a: Merchant
    b: Merchant
    c: Merchant
    member_id: int
    loyalty_id: str
    make_member: Callable[..., Any]
    counter: int = 0

    def key(self, prefix: str = "k") -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def amount_for(self, points: int, merchant: Merchant) -> int:
        """The smallest purchase (minor units) that earns exactly ``points`` at ``merchant``."""
        unit = 10**self.settings.currency_exponent
        rate = merchant.earn_rate_points_per_unit
        return -(-points * unit // rate)

    async def earn(self, points: int, merchant: Merchant | None = None, loyalty_id: str | None = None) -> Any:
        merchant = merchant or self.a
        result = await self.ledger.earn(merchant_id=merchant.id, loyalty_id=loyalty_id or self.loyalty_id,
                                        purchase_amount_minor=self.amount_for(points, merchant),
                                        idempotency_key=self.key("earn"))
        assert result.entry.points == points
        return result

    async def redeem(self, points: int, merchant: Merchant | None = None, loyalty_id: str | None = None) -> Any:
        merchant = merchant or self.b
        return await self.ledger.redeem(merchant_id=merchant.id, loyalty_id=loyalty_id or self.loyalty_id,
                                        points=points, idempotency_key=self.key("redeem"))

    async def authorize(self, points: int, merchant: Merchant | None = None, expires_in_s: int | None = None,
                        loyalty_id: str | None = None) -> Any:
        merchant = merchant or self.b
        return await self.ledger.authorize(merchant_id=merchant.id, loyalty_id=loyalty_id or self.loyalty_id,
                                           points=points, idempotency_key=self.key("auth"),
                                           expires_in_s=expires_in_s)

    async def new_member(self, merchant: Merchant | None = None) -> tuple[int, str]:
        enrolled = await self.make_member((merchant or self.a).id)
        return enrolled.member.id, enrolled.member.loyalty_id


@pytest.fixture
async def net(ledger: Ledger, settings: Settings, make_merchant: Any, make_member: Any) -> Network:
    a = (await make_merchant("Bakery", 1, "food")).merchant
    b = (await make_merchant("Books", 2, "retail")).merchant
    c = (await make_merchant("Cafe", 1, "food")).merchant
    enrolled = await make_member(a.id)
    return Network(ledger=ledger, settings=settings, a=a, b=b, c=c, member_id=enrolled.member.id,
                   loyalty_id=enrolled.member.loyalty_id, make_member=make_member)
