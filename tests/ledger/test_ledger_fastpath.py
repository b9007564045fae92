"""The one-statement earn and redeem on PostgreSQL (coalition.ledger.fastpath) and its fallback.

On PostgreSQL a plain earn or redemption must be one statement, give exactly what the
multi-statement path gives, and hand every unusual case to that path with nothing of its
own attempt left behind. On SQLite the multi-statement path is the only one.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from test_ledger_trust import allow

from coalition.db import Database
from coalition.ledger import fastpath, rules
from coalition.ledger.core import MAX_POINTS
from coalition.ledger.models import (
    Account,
    Allocation,
    AllocationKind,
    Entry,
    EntryKind,
    HoldStatus,
    Lot,
    Posting,
    PresenceProof,
)
from coalition.ledger.presence import InvalidMemberProof, presence_code
from coalition.ledger.service import Ledger
from coalition.loyalty_id import new_loyalty_id
from coalition.members.service import enroll_member
from coalition.partners.models import MerchantStatus
from coalition.partners.service import set_merchant_status
from coalition.webhooks.models import DeliveryStatus

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
needs_pg = pytest.mark.skipif(not PG_URL, reason="the fast path is PostgreSQL's: set COALITION_TEST_DATABASE_URL")


@pytest.fixture
def ledger_path() -> str:
    """This module is about the fast path and compares the two paths itself: its ledger has it on."""
    return "fast"

# Columns that name who or when rather than what happened: they differ between two members.
MEMBER_IDENTITY = {"id", "loyalty_id", "referral_code", "enroll_idempotency_key",
                   "enroll_request_hash", "created_at"}
ENTRY_IDENTITY = {"id", "member_id", "idempotency_key", "request_hash"}


class Spy:
    """Records what the fast statements did per operation: True when one wrote it, False when it fell back."""

    def __init__(self) -> None:
        self.outcomes: list[bool] = []

    def take(self) -> list[bool]:
        outcomes, self.outcomes = self.outcomes, []
        return outcomes


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    recorder = Spy()
    run = fastpath._run

    async def recording(*args: Any) -> Any:
        done = await run(*args)
        recorder.outcomes.extend(d is not None for d in done)
        return done

    monkeypatch.setattr(fastpath, "_run", recording)
    return recorder


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs: SQLAlchemy's and those on ``db.driver_connection``."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    def log(query: Any) -> None:
        sent.append(query.query)

    pooled = db.driver_connection

    @asynccontextmanager
    async def logged() -> AsyncIterator[Any]:
        async with pooled() as conn:
            conn.add_query_logger(log)
            try:
                yield conn
            finally:
                await asyncio.sleep(0)  # asyncpg calls its loggers soon after a query, not during it
                conn.remove_query_logger(log)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    db.driver_connection = logged  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        del db.driver_connection
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


def fast_statements(sent: list[str]) -> list[str]:
    return [statement for statement in sent if re.match(r"\s*WITH (RECURSIVE )?req AS", statement)]


def columns(obj: Any, leave_out: set[str]) -> dict[str, Any]:
    """The attributes an ORM object carries (set ones only), less those in ``leave_out``."""
    return {k: v for k, v in inspect(obj).dict.items() if k not in leave_out and not k.startswith("_")}


async def earn(net: Any, points: int, *, ledger: Ledger | None = None, loyalty_id: str | None = None,
               merchant: Any = None, key: str | None = None) -> Any:
    merchant = merchant or net.a
    return await (ledger or net.ledger).earn(
        merchant_id=merchant.id, loyalty_id=loyalty_id or net.loyalty_id,
        purchase_amount_minor=net.amount_for(points, merchant), idempotency_key=key or net.key("earn"))


async def redeem(net: Any, points: int, *, ledger: Ledger | None = None, loyalty_id: str | None = None,
                 key: str | None = None) -> Any:
    return await (ledger or net.ledger).redeem(merchant_id=net.b.id, loyalty_id=loyalty_id or net.loyalty_id,
                                               points=points, idempotency_key=key or net.key("redeem"))


# ---------------------------------------------------------------- which path


def test_the_statements_take_every_parameter_by_number() -> None:
    assert set(fastpath._EARN.names) >= {"merchant_id", "loyalty_id", "amount_minor", "idempotency_key"}
    assert ":" not in fastpath._EARN.sql and ":" not in fastpath._REDEEM.sql


def test_the_fast_path_sql_is_built_from_the_rules_the_models_and_the_enums() -> None:
    earn_sql, redeem_sql = fastpath._EARN_SQL, fastpath._REDEEM_SQL
    # Every quoted literal is an enum value or error code as its column stores it, none typed by hand.
    stored = {*EntryKind, *Account, *HoldStatus, *AllocationKind, *MerchantStatus, InvalidMemberProof.code,
              DeliveryStatus.PENDING}  # the webhooks outbox row the statement writes
    literals = set(re.findall(r"'([A-Z_]+)'", earn_sql + redeem_sql))
    assert literals and literals <= {str(value) for value in stored}, literals
    # The rules both paths apply appear as rules.py renders them.
    assert fastpath._EARN_POINTS in earn_sql and fastpath._MERCHANT_MAY_WRITE in earn_sql + redeem_sql
    assert fastpath._EARN_POINTS == "(r.amount_minor * mc.earn_rate_points_per_unit) / r.minor_per_unit"
    assert f"<= {rules.MAX_POINTS} - s.points" in earn_sql
    assert "ORDER BY " + ", ".join(f"l.{name}" for name in rules.FIFO_ORDER) in redeem_sql
    legs = ", ".join(f"({n}, '{leg.account}', {leg.sign})" for n, leg in enumerate(rules.EARN_LEGS, start=1))
    assert legs == fastpath._EARN_LEG_VALUES
    assert "m.balance >= r.points AND m.owed = 0" in redeem_sql  # rules.may_debit
    for model in (Entry, Lot, Posting, Allocation, PresenceProof):
        assert f"INSERT INTO {model.__tablename__} (" in earn_sql + redeem_sql


async def test_sqlite_has_only_the_multi_statement_path(ledger: Ledger, db: Database, settings: Any) -> None:
    assert ledger.fast_path is (not db.is_sqlite)
    assert Ledger(db, settings).fast_path is (not db.is_sqlite)


@needs_pg
async def test_plain_earn_and_redeem_are_one_statement_each(net: Any, db: Database, spy: Spy) -> None:
    # (a connection's first batch also has asyncpg look up the array parameters' types, once)
    await earn(net, 1)
    await redeem(net, 1)
    spy.take()
    with statements(db) as sent:
        earned = await earn(net, 100)
    assert len(sent) == 1 and sent[0].lstrip().startswith("WITH req AS")
    with statements(db) as sent:
        redeemed = await redeem(net, 30)
    assert len(sent) == 1 and sent[0].lstrip().startswith("WITH RECURSIVE req AS")
    assert spy.take() == [True, True]
    assert (earned.member.balance, redeemed.member.balance) == (100, 70)


@needs_pg
async def test_fast_results_equal_the_multi_statement_results(net: Any, db: Database, probe: Any, clock: Any,
                                                               spy: Spy) -> None:
    # given two members with the same history, one served by each path
    slow = Ledger(db, net.settings, clock=clock)
    slow.fast_path = False
    other_id, other_lid = await net.new_member()
    results = []
    start = clock.now
    for ledger, lid in ((net.ledger, net.loyalty_id), (slow, other_lid)):
        clock.now = start
        earned = await earn(net, 60, ledger=ledger, loyalty_id=lid)
        clock.advance(days=1)
        earned_c = await earn(net, 25, ledger=ledger, loyalty_id=lid, merchant=net.c)
        redeemed = await redeem(net, 70, ledger=ledger, loyalty_id=lid)
        results.append((earned, earned_c, redeemed))
    assert spy.take() == [True, True, True]

    # then every result carries the same fields with the same values
    for fast, slow_result in zip(*results, strict=True):
        assert not fast.replayed and not slow_result.replayed and fast.hold is None and slow_result.hold is None
        assert columns(fast.entry, ENTRY_IDENTITY) == columns(slow_result.entry, ENTRY_IDENTITY)
        assert columns(fast.member, MEMBER_IDENTITY) == columns(slow_result.member, MEMBER_IDENTITY)
        assert set(columns(fast.member, set())) == set(columns(slow_result.member, set()))
        assert set(columns(fast.entry, set())) == set(columns(slow_result.entry, set()))
    # and the rows written are the same: lots, allocations (FIFO), postings
    fast_earned, _, fast_redeemed = results[0]
    slow_earned, _, slow_redeemed = results[1]
    fast_lot, slow_lot = await probe.lot_for(fast_earned.entry.id), await probe.lot_for(slow_earned.entry.id)
    assert (fast_lot.points, fast_lot.remaining, fast_lot.expires_at, fast_lot.issuer_merchant_id,
            fast_lot.reversed, fast_lot.created_at) == (slow_lot.points, slow_lot.remaining, slow_lot.expires_at,
                                                         slow_lot.issuer_merchant_id, slow_lot.reversed,
                                                         slow_lot.created_at)

    def allocation_fields(rows: list[Any]) -> list[tuple[Any, ...]]:
        return [(a.issuer_merchant_id, a.merchant_id, a.kind, a.points, a.hold_id, a.created_at) for a in rows]

    assert allocation_fields(await probe.allocations(fast_redeemed.entry.id)) == allocation_fields(
        await probe.allocations(slow_redeemed.entry.id))
    for fast, slow_result in ((fast_earned, slow_earned), (fast_redeemed, slow_redeemed)):
        fast_legs = {(acc, "member" if acc_id == net.member_id and acc == "MEMBER" else acc_id): pts
                     for (acc, acc_id), pts in (await probe.postings(fast.entry.id)).items()}
        slow_legs = {(acc, "member" if acc_id == other_id and acc == "MEMBER" else acc_id): pts
                     for (acc, acc_id), pts in (await probe.postings(slow_result.entry.id)).items()}
        assert fast_legs == slow_legs
    # and what the ledger returned is what it stored
    stored = (await probe.entries(id=fast_redeemed.entry.id))[0]
    assert {k: getattr(stored, k) for k in columns(fast_redeemed.entry, set())} == columns(fast_redeemed.entry, set())


@needs_pg
async def test_redeem_takes_lots_soonest_expiry_first_then_by_id(net: Any, db: Database, probe: Any, clock: Any,
                                                                 spy: Spy) -> None:
    # given five lots: expiring in 365, 30, 365 (a day later), 30 and 90 days
    short = Ledger(db, net.settings.with_overrides(points_expiry_days=30), clock=clock)
    medium = Ledger(db, net.settings.with_overrides(points_expiry_days=90), clock=clock)
    first = await earn(net, 10)
    promo = await earn(net, 20, ledger=short, merchant=net.c)
    clock.advance(days=1)
    later = await earn(net, 30)
    promo_twin = await earn(net, 40, ledger=short)
    quarter = await earn(net, 50, ledger=medium, merchant=net.c)
    spy.take()
    lot = {r.entry_id: r for r in await probe.lots(net.member_id)}

    # when 115 points are redeemed in one fast statement
    result = await redeem(net, 115)

    # then the 30-day lots go first (older id first), then the 90-day one, then the oldest 365-day one
    assert spy.take() == [True]
    assert [(a.lot_id, a.issuer_merchant_id, a.merchant_id, a.points, a.kind)
            for a in await probe.allocations(result.entry.id)] == [
        (lot[promo.entry.id].id, net.c.id, net.b.id, 20, AllocationKind.REDEEM),
        (lot[promo_twin.entry.id].id, net.a.id, net.b.id, 40, AllocationKind.REDEEM),
        (lot[quarter.entry.id].id, net.c.id, net.b.id, 50, AllocationKind.REDEEM),
        (lot[first.entry.id].id, net.a.id, net.b.id, 5, AllocationKind.REDEEM),
    ]
    remaining = {r.entry_id: r.remaining for r in await probe.lots(net.member_id)}
    assert remaining == {first.entry.id: 5, promo.entry.id: 0, later.entry.id: 30, promo_twin.entry.id: 0,
                         quarter.entry.id: 0}
    assert result.member.balance == 35
    assert await probe.postings(result.entry.id) == {("MEMBER", net.member_id): -115, ("HONORED", net.b.id): 115}


@needs_pg
async def test_redeem_walks_many_lots_of_one_expiry_in_id_order(net: Any, probe: Any, spy: Spy) -> None:
    # given 60 lots of 10 points, all earned at the same moment (one expiry: ties go by lot id)
    earned = [await earn(net, 10) for _ in range(60)]
    spy.take()
    lot_ids = [r.id for r in sorted(await probe.lots(net.member_id), key=lambda r: r.id)]

    # when 455 points are redeemed in one fast statement (within the allowance without proof of presence)
    net.ledger.allowance = allow(1000)
    result = await redeem(net, 455)

    # then the 45 oldest lots are emptied and the 46th gives 5, in lot id order; the rest are untouched
    assert spy.take() == [True]
    assert [(a.lot_id, a.points) for a in await probe.allocations(result.entry.id)] == [
        *((lot_id, 10) for lot_id in lot_ids[:45]), (lot_ids[45], 5)]
    remaining = {r.id: r.remaining for r in await probe.lots(net.member_id)}
    assert [remaining[lot_id] for lot_id in lot_ids] == [0] * 45 + [5] + [10] * 14
    assert result.member.balance == 600 - 455 and len(earned) == 60


# ---------------------------------------------------------------- every unusual case falls back


@needs_pg
async def test_refusals_fall_back_and_leave_nothing(net: Any, db: Database, probe: Any, make_merchant: Any,
                                                    spy: Spy) -> None:
    await earn(net, 40)
    spy.take()
    unknown = new_loyalty_id()
    generous = (await make_merchant("Generous", 1000)).merchant
    refusals: list[tuple[str, Callable[[], Any]]] = [
        ("MEMBER_NOT_FOUND", lambda: net.ledger.earn(merchant_id=net.a.id, loyalty_id=unknown,
                                                     purchase_amount_minor=500, idempotency_key="x1")),
        ("MEMBER_NOT_FOUND", lambda: net.ledger.redeem(merchant_id=net.a.id, loyalty_id=unknown, points=1,
                                                       idempotency_key="x2")),
        ("INSUFFICIENT_POINTS", lambda: redeem(net, 41, key="x3")),
        ("PURCHASE_TOO_SMALL", lambda: net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id,
                                                       purchase_amount_minor=99, idempotency_key="x4")),
        ("BALANCE_LIMIT_EXCEEDED", lambda: net.ledger.earn(merchant_id=generous.id, loyalty_id=net.loyalty_id,
                                                           purchase_amount_minor=MAX_POINTS, idempotency_key="x5")),
    ]
    for code, call in refusals:
        await probe.unchanged(code, call)
        assert spy.take() == [False], code
    await set_merchant_status(db, net.b.id, MerchantStatus.SUSPENDED)
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: earn(net, 5, merchant=net.b, key="x6"))
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: redeem(net, 5, key="x7"))
    assert spy.take() == [False, False]


@needs_pg
async def test_retries_and_key_conflicts_fall_back(net: Any, probe: Any, spy: Spy) -> None:
    first_earn = await earn(net, 50, key="e")
    first_redeem = await redeem(net, 20, key="r")
    assert spy.take() == [True, True]
    before = await probe.snapshot()

    again_earn = await earn(net, 50, key="e")
    again_redeem = await redeem(net, 20, key="r")

    assert spy.take() == [False, False]
    assert (again_earn.replayed, again_redeem.replayed) == (True, True)
    assert columns(again_earn.entry, set()) == {**columns(first_earn.entry, set()),
                                                **columns(again_earn.entry, set())}
    assert columns(again_redeem.entry, set()) == {**columns(first_redeem.entry, set()),
                                                  **columns(again_redeem.entry, set())}
    assert again_redeem.member.balance == 30
    assert await probe.snapshot() == before
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: earn(net, 51, key="e"))
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: redeem(net, 21, key="r"))
    assert spy.take() == [False, False]


@needs_pg
async def test_a_member_who_owes_points_falls_back(net: Any, probe: Any, spy: Spy) -> None:
    # given a member who owes 30 points (earn 50, spend 30, the earn refunded)
    earned = await earn(net, 50)
    await redeem(net, 30)
    await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earned.entry.id, idempotency_key="refund")
    spy.take()
    # then a redemption is refused by the multi-statement path
    await probe.unchanged("MEMBER_OWES_POINTS", lambda: redeem(net, 1))
    assert spy.take() == [False]
    # and an earn repays the debt first, there too
    result = await earn(net, 45)
    assert spy.take() == [False]
    assert (result.member.balance, result.member.owed) == (15, 0)
    assert await probe.postings(result.entry.id) == {
        ("ISSUED", net.a.id): -45, ("MEMBER", net.member_id): 15, ("DEBT", net.member_id): 30}
    # and once repaid the member is plain again
    await earn(net, 5)
    assert spy.take() == [True]


@needs_pg
async def test_a_referred_member_earns_on_the_multi_statement_path(net: Any, db: Database, keys: Any,
                                                                   spy: Spy) -> None:
    async with db.read() as conn:
        code = (await conn.execute(text("SELECT referral_code FROM members WHERE id = :id"),
                                   {"id": net.member_id})).scalar_one()
    referee = (await enroll_member(db, keys, merchant_id=net.a.id, idempotency_key="ref",
                                   referral_code=code)).member
    unit = 10**net.settings.currency_exponent
    result = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=referee.loyalty_id,
                                   purchase_amount_minor=50 * unit, idempotency_key="first")
    assert spy.take() == [False]
    assert result.member.balance == 50 + net.settings.referral_welcome_points
    # the referee's redemptions are plain
    await redeem(net, 10, loyalty_id=referee.loyalty_id)
    assert spy.take() == [True]


# ---------------------------------------------------------------- concurrency


class PausingDatabase(Database):
    """A database whose write transactions wait for ``release`` before they commit."""

    def __init__(self, url: str) -> None:
        super().__init__(url, pool_size=2)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with super().transaction() as conn:
            yield conn
            self.entered.set()
            await self.release.wait()


async def wait_for_lock_wait(db: Database) -> None:
    """Until some other backend of this database waits on a row lock."""
    for _ in range(500):
        async with db.read() as conn:
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"))).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no backend started waiting on the member row")


async def race(db: Database, settings: Any, clock: Any, held: Callable[[Ledger], Awaitable[Any]],
               fast: Callable[[], Awaitable[Any]]) -> tuple[Any, Any]:
    """Run ``held`` on a multi-statement ledger that stops before it commits, start ``fast`` then,
    and let ``held`` commit once ``fast`` waits on the member's row lock. Both results, in that order."""
    paused = PausingDatabase(settings.database_url)
    ledger = Ledger(paused, settings, clock=clock)
    ledger.fast_path = False
    try:
        first = asyncio.create_task(held(ledger))
        await paused.entered.wait()
        second = asyncio.create_task(fast())
        await wait_for_lock_wait(db)
        paused.release.set()
        return await first, await second
    finally:
        paused.release.set()
        await paused.dispose()


@needs_pg
@pytest.mark.parametrize("operation", ["earn", "redeem"])
async def test_a_concurrent_change_to_the_member_makes_the_statement_run_again(
        net: Any, db: Database, probe: Any, settings: Any, clock: Any, spy: Spy, operation: str) -> None:
    # given a member with two lots, and a redemption on the multi-statement path that has
    # changed the member and the first lot but not yet committed
    await earn(net, 30)
    await earn(net, 40, merchant=net.c)
    spy.take()
    # when the fast statement reads its snapshot (the old member and lots) and then waits
    # for the member's row lock
    with statements(db) as sent:
        redeemed, result = await race(db, settings, clock, lambda other: redeem(net, 25, ledger=other),
                                      lambda: redeem(net, 20) if operation == "redeem" else earn(net, 20))

    # then its UPDATE matched nothing, the statement undid itself and ran again on a snapshot
    # that sees the change, and did it right
    assert len(fast_statements(sent)) == 2
    assert spy.take() == [True]
    assert redeemed.member.balance == 45
    lots = await probe.lots(net.member_id)
    if operation == "redeem":
        assert result.member.balance == 25
        assert [x.remaining for x in lots] == [0, 25]
        assert [(a.lot_id, a.points) for a in await probe.allocations(result.entry.id)] == [
            (lots[0].id, 5), (lots[1].id, 15)]
    else:
        assert result.member.balance == 65
        assert [x.remaining for x in lots] == [5, 40, 20]
    assert (await probe.counts())["entries"] == 4


@needs_pg
async def test_a_lost_connection_is_dropped_and_the_write_still_happens_once(net: Any, db: Database, probe: Any,
                                                                             settings: Any, clock: Any,
                                                                             spy: Spy) -> None:
    # given a ledger whose pool holds one idle connection, and that connection's backend gone
    small = Database(settings.database_url, pool_size=1)
    ledger = Ledger(small, settings, clock=clock)
    try:
        await earn(net, 10, ledger=ledger)
        async with small.driver_connection() as conn:
            victim = await conn.fetchval("SELECT pg_backend_pid()")
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})).scalar_one()
        spy.take()
        # when the fast statement meets the dead connection
        result = await earn(net, 20, ledger=ledger, key="after-the-loss")
        # then the multi-statement path made the earn, once
        assert spy.take() == [False]
        assert result.member.balance == 30
        assert len(await probe.entries(idempotency_key="after-the-loss")) == 1
        # and the dead connection left the pool: the next earn is fast again
        assert (await earn(net, 5, ledger=ledger)).member.balance == 35
        assert spy.take() == [True]
    finally:
        await small.dispose()


@needs_pg
async def test_a_check_constraint_in_the_fast_statement_falls_back(net: Any, db: Database, probe: Any,
                                                                   spy: Spy) -> None:
    # given a CHECK that any balance of exactly 77 breaks (both paths write that balance)
    await earn(net, 70)
    spy.take()
    async with db.transaction() as conn:
        await conn.execute(text("ALTER TABLE members ADD CONSTRAINT ck_test_not_77 CHECK (balance <> 77)"))
    try:
        before = await probe.snapshot()
        # when an earn would make it 77, the fast statement's CHECK error is caught and the
        # multi-statement path runs, and raises it as it always did
        with pytest.raises(IntegrityError, match="ck_test_not_77"):
            await earn(net, 7)
        assert spy.take() == [False]
        assert await probe.snapshot() == before
    finally:
        async with db.transaction() as conn:
            await conn.execute(text("ALTER TABLE members DROP CONSTRAINT ck_test_not_77"))
    assert (await earn(net, 7)).member.balance == 77


@needs_pg
async def test_a_lot_earned_concurrently_is_not_skipped(net: Any, db: Database, probe: Any, settings: Any,
                                                        clock: Any, spy: Spy) -> None:
    # given a member with one lot, and an earn of a 30-day lot (expiring first) on the
    # multi-statement path that has not yet committed
    await earn(net, 30)
    spy.take()
    # when a redemption's snapshot sees only the old lot and then waits for the member
    with statements(db) as sent:
        promo_earned, result = await race(db, settings.with_overrides(points_expiry_days=30), clock,
                                          lambda promo: earn(net, 10, ledger=promo), lambda: redeem(net, 20))

    # then it ran again and took the new, sooner-expiring lot first (its first snapshot would not have)
    assert len(fast_statements(sent)) == 2
    assert spy.take() == [True]
    lots = {lot.entry_id: lot for lot in await probe.lots(net.member_id)}
    promo_lot = lots[promo_earned.entry.id]
    assert [(a.lot_id, a.points) for a in await probe.allocations(result.entry.id)] == [
        (promo_lot.id, 10), (next(lot.id for lot in lots.values() if lot.id != promo_lot.id), 10)]
    assert result.member.balance == 20


@needs_pg
async def test_every_write_that_moves_lots_updates_the_member_row(net: Any, db: Database, clock: Any) -> None:
    """The fast statement trusts an unchanged ``xmin``.

    A write that moved a member's lots but only locked the member row would break that.
    """

    async def version() -> tuple[str, list[tuple[int, int]]]:
        async with db.read() as conn:
            xmin = (await conn.execute(text("SELECT xmin::text FROM members WHERE id = :id"),
                                       {"id": net.member_id})).scalar_one()
            lots = [(r.id, r.remaining) for r in await conn.execute(
                text("SELECT id, remaining FROM lots WHERE member_id = :id ORDER BY id"), {"id": net.member_id})]
        return xmin, lots

    async def changes(step: str, call: Callable[[], Any]) -> Any:
        before = await version()
        result = await call()
        after = await version()
        assert after[1] != before[1], f"{step}: moved no lot"
        assert after[0] != before[0], f"{step}: moved lots without updating the member row"
        return result

    ledger = net.ledger
    await changes("earn", lambda: earn(net, 100))
    clock.advance(days=1)
    earned_c = await changes("earn at C", lambda: earn(net, 50, merchant=net.c))
    redeemed = await changes("redeem", lambda: redeem(net, 10))
    hold = (await changes("authorize", lambda: net.authorize(20))).hold
    await changes("capture", lambda: ledger.capture(merchant_id=net.b.id, hold_id=hold.id, points=15,
                                                    idempotency_key="cap"))
    hold = (await changes("authorize", lambda: net.authorize(5))).hold
    await changes("void", lambda: ledger.void(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="void"))
    await changes("authorize", lambda: net.authorize(5, expires_in_s=60))
    clock.advance(seconds=120)
    await changes("hold expiry", lambda: ledger.release_expired_holds())
    await changes("reverse a redemption", lambda: ledger.reverse(merchant_id=net.b.id,
                                                                 transaction_id=redeemed.entry.id,
                                                                 idempotency_key="rev-r"))
    await changes("reverse an earn", lambda: ledger.reverse(merchant_id=net.c.id, transaction_id=earned_c.entry.id,
                                                            idempotency_key="rev-e"))
    await changes("network bonus", lambda: ledger.award_network_bonus(member_id=net.member_id, points=7,
                                                                      idempotency_key="bonus"))
    clock.advance(days=400)
    await changes("expiry", lambda: ledger.expire_lots())


# ---------------------------------------------------------------- batches


@pytest.fixture
def batched(db: Database, net: Any, clock: Any) -> Ledger:
    """A ledger that runs one fast statement of each kind at a time, so calls that arrive
    while one runs go together in the next."""
    return Ledger(db, net.settings.with_overrides(ledger_batches_in_flight=1), clock=clock)


async def alone_then_together(*calls: Awaitable[Any]) -> list[Any]:
    """Start every call at once: the first runs alone, the rest arrive while it runs and go in
    one batch. Results (or the errors raised) in order."""
    return await asyncio.gather(*calls, return_exceptions=True)


@needs_pg
async def test_concurrent_operations_go_in_one_statement_each_with_its_own_results(
        net: Any, db: Database, probe: Any, clock: Any, batched: Ledger, spy: Spy) -> None:
    # given six members, each with a 30-day lot from C and a 365-day lot from A
    short = Ledger(db, net.settings.with_overrides(points_expiry_days=30), clock=clock)
    members = [await net.new_member() for _ in range(6)]
    for n, (_, lid) in enumerate(members):
        await earn(net, 10 + n, ledger=short, loyalty_id=lid, merchant=net.c)
        await earn(net, 100, loyalty_id=lid)
    spy.take()

    # when all six earn at A at once (points 1..6), then all six redeem 20 + n at once
    with statements(db) as sent:
        earned = await alone_then_together(*(
            earn(net, n + 1, ledger=batched, loyalty_id=lid, key=f"e{n}") for n, (_, lid) in enumerate(members)))
    assert len(sent) == 2
    with statements(db) as sent:
        redeemed = await alone_then_together(*(
            redeem(net, 20 + n, ledger=batched, loyalty_id=lid, key=f"r{n}") for n, (_, lid) in enumerate(members)))
    assert len(sent) == 2

    # then every operation was written by a fast statement, with its own entry, member and rows
    assert spy.take() == [True] * 12
    for n, ((member_id, lid), e, r) in enumerate(zip(members, earned, redeemed, strict=True)):
        assert (e.member.id, e.member.loyalty_id, e.entry.points, e.entry.idempotency_key) == (
            member_id, lid, n + 1, f"e{n}")
        assert (e.member.balance, e.member.lifetime_points) == (111 + 2 * n, 111 + 2 * n)
        assert (r.member.id, r.entry.points, r.member.balance) == (member_id, -(20 + n), 91 + n)
        assert await probe.postings(e.entry.id) == {("ISSUED", net.a.id): -(n + 1), ("MEMBER", member_id): n + 1}
        assert await probe.postings(r.entry.id) == {("MEMBER", member_id): -(20 + n), ("HONORED", net.b.id): 20 + n}
        lots = await probe.lots(member_id)  # the 30-day lot from C first, emptied; then A's oldest
        assert [(a.lot_id, a.issuer_merchant_id, a.points) for a in await probe.allocations(r.entry.id)] == [
            (lots[0].id, net.c.id, 10 + n), (lots[1].id, net.a.id, 10)]
        assert [lot.remaining for lot in lots] == [0, 90, n + 1]


@needs_pg
async def test_refusals_in_a_batch_fall_back_one_by_one_and_the_rest_is_written(
        net: Any, probe: Any, make_merchant: Any, batched: Ledger, spy: Spy) -> None:
    # given two members with points, a key already used, and a merchant that gives 1,000 a unit
    (first_id, first), (second_id, second) = await net.new_member(), await net.new_member()
    used = await earn(net, 40, loyalty_id=first, key="used")
    generous = (await make_merchant("Generous", 1000)).merchant
    spy.take()

    # when one batch holds two plain earns and four that the fast statement must leave out
    results = await alone_then_together(
        earn(net, 5, ledger=batched, loyalty_id=first),
        earn(net, 7, ledger=batched, loyalty_id=second),
        earn(net, 40, ledger=batched, loyalty_id=first, key="used"),  # a retry
        batched.earn(merchant_id=net.a.id, loyalty_id=new_loyalty_id(), purchase_amount_minor=500,
                     idempotency_key="unknown"),
        batched.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=99,
                     idempotency_key="small"),
        batched.earn(merchant_id=generous.id, loyalty_id=net.loyalty_id, purchase_amount_minor=MAX_POINTS,
                     idempotency_key="huge"),
    )

    # then the plain ones were written by it, each of the others took the multi-statement path
    # and got its own answer; the refused ones wrote nothing
    outcomes = spy.take()
    assert outcomes[:2] == [True, True] and sorted(outcomes[2:]) == [False] * 4
    assert (results[0].member.balance, results[1].member.balance) == (45, 7)
    assert results[2].replayed and results[2].entry.id == used.entry.id
    assert [getattr(r, "code", None) for r in results[3:]] == [
        "MEMBER_NOT_FOUND", "PURCHASE_TOO_SMALL", "BALANCE_LIMIT_EXCEEDED"]
    assert [len(await probe.entries(idempotency_key=k)) for k in ("used", "unknown", "small", "huge")] == [1, 0, 0, 0]
    assert (await probe.member(first_id)).balance == 45 and (await probe.member(second_id)).balance == 7

    # and the same for redemptions: one too many points, one unknown member
    results = await alone_then_together(
        redeem(net, 5, ledger=batched, loyalty_id=first),
        redeem(net, 8, ledger=batched, loyalty_id=second),
        redeem(net, 3, ledger=batched, loyalty_id=net.loyalty_id),
        batched.redeem(merchant_id=net.b.id, loyalty_id=new_loyalty_id(), points=1, idempotency_key="nobody"),
    )
    outcomes = spy.take()
    assert outcomes[0] is True and sorted(outcomes[1:]) == [False, False, False]
    assert results[0].member.balance == 40
    assert [getattr(r, "code", None) for r in results[1:]] == [
        "INSUFFICIENT_POINTS", "INSUFFICIENT_POINTS", "MEMBER_NOT_FOUND"]
    assert (await probe.member(second_id)).balance == 7


@needs_pg
async def test_one_key_twice_in_a_batch_is_written_once(net: Any, probe: Any, batched: Ledger, spy: Spy) -> None:
    # given two members, and one idempotency key sent for each of them at once
    (_, first), (_, second) = await net.new_member(), await net.new_member()
    results = await alone_then_together(
        earn(net, 1, ledger=batched, loyalty_id=net.loyalty_id),
        earn(net, 10, ledger=batched, loyalty_id=first, key="shared"),
        earn(net, 10, ledger=batched, loyalty_id=second, key="shared"),
    )
    # then one of them was written; the other is a conflict and changed nothing
    assert spy.take() == [True, True, False]
    assert results[1].member.loyalty_id == first and results[1].member.balance == 10
    assert getattr(results[2], "code", None) == "IDEMPOTENCY_KEY_CONFLICT"
    assert len(await probe.entries(idempotency_key="shared")) == 1


@needs_pg
async def test_a_member_changed_under_a_batch_makes_it_run_again_and_each_operation_happens_once(
        net: Any, db: Database, probe: Any, settings: Any, clock: Any, batched: Ledger, spy: Spy) -> None:
    # given two members, and a redemption of the first on the multi-statement path that has
    # changed the member but not yet committed
    (_, other) = await net.new_member()
    await earn(net, 50)
    await earn(net, 50, loyalty_id=other)
    spy.take()

    # when a batch with an earn for each member reads its snapshot and waits for the row lock
    async def batch() -> list[Any]:
        return await alone_then_together(
            earn(net, 1, ledger=batched, loyalty_id=other, key="alone"),
            earn(net, 20, ledger=batched, key="changed"),
            earn(net, 30, ledger=batched, loyalty_id=other, key="unchanged"))

    with statements(db) as sent:
        redeemed, results = await race(db, settings, clock, lambda slow: redeem(net, 25, ledger=slow), batch)

    # then the batch's statement undid itself and ran again, and made both earns, once
    assert len(fast_statements(sent)) == 3
    assert spy.take() == [True, True, True]
    assert redeemed.member.balance == 25
    assert (results[1].member.balance, results[2].member.balance) == (45, 81)
    assert [len(await probe.entries(idempotency_key=k)) for k in ("changed", "unchanged")] == [1, 1]


@needs_pg
async def test_two_operations_on_one_member_in_one_statement_undo_it(net: Any, db: Database, probe: Any,
                                                                     clock: Any) -> None:
    # (the batcher never builds such a batch; the statement must refuse it anyway: one UPDATE
    # cannot apply two earns to one member row)
    await earn(net, 10)
    before = await probe.snapshot()
    now = clock()
    operations = [{
        "merchant_id": net.a.id, "loyalty_id": net.loyalty_id, "amount_minor": net.amount_for(5, net.a),
        "minor_per_unit": 10**net.settings.currency_exponent, "reference": None, "idempotency_key": key,
        "request_hash": key, "now": now, "expires_at": now, "campaigns": False, "tiers": False, "base_tier_pct": 100,
        "hooked": False,
    } for key in ("twice-1", "twice-2")]
    with statements(db) as sent:
        assert await fastpath._run(db, fastpath._EARN, operations, EntryKind.EARN) == [None, None]
    assert len(fast_statements(sent)) == 2  # refused, and again when run once more
    assert await probe.snapshot() == before


# ---------------------------------------------------------------- proof of presence, kept refusals (issue 13)


@needs_pg
async def test_the_allowance_and_proofs_on_the_fast_path(net: Any, probe: Any, spy: Spy, keys: Any,
                                                         clock: Any) -> None:
    net.ledger.allowance = allow(50)
    await earn(net, 500)
    spy.take()
    # within the allowance: one statement
    await redeem(net, 50)
    assert spy.take() == [True]
    # beyond it: the statement leaves it out, the multi-statement path refuses it
    await probe.unchanged("MEMBER_PROOF_REQUIRED", lambda: redeem(net, 1))
    assert spy.take() == [False]
    # with the member's code: one statement, which writes the proof
    code = presence_code(keys, net.loyalty_id, clock())
    done = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=200,
                                   idempotency_key="proved", member_proof=code)
    assert spy.take() == [True]
    assert done.member.balance == 250
    # the same code again: the statement fails on the used proof, the multi-statement path refuses it
    await probe.unchanged("INVALID_MEMBER_PROOF", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=10, idempotency_key="again", member_proof=code))
    assert spy.take() == [False]
    # a wrong code never reaches the statement
    await probe.unchanged("INVALID_MEMBER_PROOF", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=10, idempotency_key="wrong", member_proof="1"))
    assert spy.take() == []


@needs_pg
async def test_a_kept_refusal_is_not_overtaken_by_the_fast_path(net: Any, probe: Any, spy: Spy) -> None:
    await earn(net, 5)
    spy.take()
    await probe.error(redeem(net, 20, key="r"), "INSUFFICIENT_POINTS")
    await earn(net, 50)
    spy.take()
    # the statement sees the refusal under the key and leaves the retry to the multi-statement path
    await probe.unchanged("INSUFFICIENT_POINTS", lambda: redeem(net, 20, key="r"))
    assert spy.take() == [False]
