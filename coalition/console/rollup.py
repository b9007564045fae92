"""The console dashboard's rollup: each merchant's entries added up once, by the worker, not by every page view.

The worker's ``dashboards`` job (:func:`roll_up`, every ``--interval-s``) adds the ledger's
entries to three tables (:mod:`coalition.console.rollup_models`): per (merchant, member) the
entries, earns, points issued and honored; per (merchant, week) the points issued and honored;
per merchant the totals of the first. The dashboard
(:func:`coalition.console.dashboard.merchant_dashboard`) reads them plus the entries not rolled
up yet (the tail: a few minutes of one merchant's entries), so its figures are the same as
counting every entry, at a fraction of the cost.

The mark. One row (:class:`~coalition.console.rollup_models.DashboardRollup`) says how far the
rollup goes: entries with id <= ``rolled_through_id`` are in it, the others are not. An id is
drawn when its transaction inserts the row, not when it commits, so the largest id visible may
be above an id still in flight, whose row appears later (or never: a rolled-back or refused
idempotent write burns its id on PostgreSQL). So the rollup never moves the mark up to an id it
has just seen. It notes the largest id (``pending_id``) and when (``pending_seen_at``), and only
:data:`GRACE` later rolls up to it: every transaction that held a smaller id when it was noted
has ended by then. This needs no list of the ids that were missing (which a partner replaying
refused writes could grow without bound), only that ledger write transactions are short:

- the API's writes are one short transaction each (a member's row lock, a few inserts), and on
  PostgreSQL every statement has ``statement_timeout`` (``COALITION_DB_STATEMENT_TIMEOUT_S``,
  1 s; :class:`coalition.db.Timeouts`) and a transaction idle for 60 s between statements (a
  process frozen mid-request) is ended by the server (``idle_in_transaction_session_timeout``,
  ``coalition/app.py``), so it never commits late; the fast paths' writes are a single statement;
- the worker's writes (expiry, holds, vouchers) are one transaction per member;
- an import or a bulk load writes for minutes in one transaction: it holds the long-write lock
  (:mod:`coalition.ledger.long_writes`), and a run that finds it held does nothing.

Entries' ``created_at`` may be backdated (imports, demo loads, tests), so the mark goes by id,
never by time. On SQLite a writer holds the database's write lock and a new id is the largest
plus one, so no smaller id can be in flight; the grace costs nothing there but a few minutes' tail.

Each run: while the pending id is at least :data:`GRACE` old, roll up the next :data:`STEP`
entries after the mark and move the mark to the last of them, each step in one transaction
(the rollup and the mark move together), so the first run on a large existing ledger never
holds one huge transaction; once the mark reaches the pending id, note a new one (the largest
id now, and now). Two workers at once: each step takes the long-write lock exclusively without
waiting (PostgreSQL; SQLite serializes writers), and the mark is moved only from the value the
step read, so an entry is never added twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause, Subquery

from coalition.console.rollup_models import DashboardMember, DashboardMerchant, DashboardRollup, DashboardWeek
from coalition.db import Database
from coalition.ledger.long_writes import LONG_WRITE_LOCK
from coalition.ledger.models import Entry, EntryKind
from coalition.members.models import Member

# How long after the largest entry id is noted the rollup goes up to it. A ledger write
# transaction lasts milliseconds (the API's statements are cancelled after 1 s on PostgreSQL);
# five minutes is far beyond any of them, and costs the dashboard's read five minutes of tail.
GRACE = dt.timedelta(minutes=5)
STEP = 50_000  # entries rolled up per transaction
STATE_ID = 1
# A merchant's totals (DashboardMerchant), in the order total_changes gives their changes.
TOTALS = ("served", "served_enrolled", "buyers", "repeat", "issued", "honored")


@dataclass(frozen=True)
class Mark:
    rolled_through_id: int
    pending_id: int | None
    pending_seen_at: dt.datetime | None


def _insert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def week_start(conn: AsyncConnection, created_at: Any) -> ColumnElement[Any]:
    """The UTC Monday 00:00 that starts ``created_at``'s week, computed by the database."""
    if conn.dialect.name == "postgresql":
        utc: ColumnElement[str] = literal_column("'UTC'")
        return func.timezone(utc, func.date_trunc(literal_column("'week'"), func.timezone(utc, created_at)))
    # SQLite keeps timestamps as UTC text in SQLAlchemy's format. Its date only: SQLite rounds
    # the time to milliseconds, so 23:59:59.999999 on a Sunday would count in the next week.
    # 'weekday 0' moves to the coming Sunday (or stays on one), six days back is that week's Monday.
    return func.strftime(literal_column("'%Y-%m-%d 00:00:00.000000'"), func.substr(created_at, 1, 10),
                         literal_column("'weekday 0'"), literal_column("'-6 days'"))


def member_sums(where: list[ColumnElement[bool]]) -> Any:
    """Per (merchant, member): entries, earns, points issued and honored, of the entries matching ``where``."""
    earn, redeem = Entry.kind == EntryKind.EARN, Entry.kind == EntryKind.REDEEM
    return (select(Entry.merchant_id, Entry.member_id, func.count().label("entries"),
                   func.sum(case((earn, 1), else_=0)).label("earns"),
                   func.sum(case((earn, Entry.points), else_=0)).label("issued"),
                   func.sum(case((redeem, -Entry.points), else_=0)).label("honored"))
            .where(*where).group_by(Entry.merchant_id, Entry.member_id))


def total_changes(sums: Subquery) -> tuple[list[ColumnElement[Any]], FromClause]:
    """What adding ``sums`` (:func:`member_sums` rows) to the rollup changes in each merchant's
    :data:`TOTALS`, one expression per total and per row, and what they are read from: the rows
    joined to their members and to their members' rows in the rollup so far (a member is new here
    when it has none; a buyer or a repeat buyer when its earns pass one or two). The rollup adds
    them up per merchant; the dashboard adds those of its tail to its rolled-up totals."""
    old = DashboardMember
    old_earns, new = func.coalesce(old.earns, 0), old.member_id.is_(None)
    changes: list[ColumnElement[Any]] = [
        case((new, 1), else_=0),
        case((and_(new, Member.enrolled_by_merchant_id == sums.c.merchant_id), 1), else_=0),
        case((and_(old_earns == 0, sums.c.earns > 0), 1), else_=0),
        case((and_(old_earns < 2, old_earns + sums.c.earns >= 2), 1), else_=0),
        sums.c.issued, sums.c.honored]
    joined = (sums.join(Member, Member.id == sums.c.member_id)
              .outerjoin(old, and_(old.merchant_id == sums.c.merchant_id, old.member_id == sums.c.member_id)))
    return changes, joined


async def read_mark(conn: AsyncConnection) -> Mark:
    """The mark as ``conn`` sees it; nothing rolled up when there is no row yet."""
    row = (await conn.execute(select(DashboardRollup.rolled_through_id, DashboardRollup.pending_id,
                                     DashboardRollup.pending_seen_at)
                              .where(DashboardRollup.id == STATE_ID))).first()
    return Mark(0, None, None) if row is None else Mark(int(row[0]), row[1], row[2])


async def roll_up(db: Database, now: dt.datetime, *, step: int = STEP) -> int:
    """The worker's job: roll up what is :data:`GRACE` old, note the next pending id. Returns the entries rolled."""
    rolled = 0
    while True:
        async with db.transaction() as conn:
            if conn.dialect.name == "postgresql" and not (await conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LONG_WRITE_LOCK})).scalar():
                return rolled  # another worker rolls up, or an import is in flight: the next run
            await conn.execute(_insert(conn)(DashboardRollup).values(id=STATE_ID, rolled_through_id=0)
                               .on_conflict_do_nothing())
            mark = await read_mark(conn)
            through, pending, seen_at = mark.rolled_through_id, mark.pending_id, mark.pending_seen_at
            if pending is not None and pending > through and seen_at is not None and seen_at <= now - GRACE:
                end = (await conn.execute(select(Entry.id).where(Entry.id > through, Entry.id <= pending)
                                          .order_by(Entry.id).offset(step - 1).limit(1))).scalar()
                end = pending if end is None else int(end)
                rolled += await _add(conn, through, end)
                through = end
            elif pending is not None and pending > through:
                return rolled  # the pending id is not GRACE old yet
            caught_up = through >= (pending or 0)
            if caught_up:  # note the largest id now: rolled up GRACE later
                pending = int((await conn.execute(select(func.coalesce(func.max(Entry.id), 0)))).scalar_one())
                seen_at = now
            moved = await conn.execute(
                update(DashboardRollup)
                .where(DashboardRollup.id == STATE_ID, DashboardRollup.rolled_through_id == mark.rolled_through_id)
                .values(rolled_through_id=through, pending_id=pending, pending_seen_at=seen_at))
            if moved.rowcount != 1:  # cannot happen under the lock; never add the same entries twice
                raise RuntimeError("the dashboard rollup's mark moved under this run")
        if caught_up:
            return rolled


async def _add(conn: AsyncConnection, after: int, through: int) -> int:
    """Add the entries with ``after`` < id <= ``through`` to the rollup. Returns how many there were."""
    in_range = [Entry.id > after, Entry.id <= through, Entry.merchant_id.is_not(None)]
    insert = _insert(conn)
    batch = member_sums(in_range).subquery("batch")
    # The merchants' totals first: whether a member is new here, or now has one or two earns,
    # depends on its row before this batch is added to it.
    changes, joined = total_changes(batch)
    deltas = select(batch.c.merchant_id, *(func.sum(c) for c in changes)).select_from(joined).group_by(
        batch.c.merchant_id)
    stmt = insert(DashboardMerchant).from_select(["merchant_id", *TOTALS], deltas)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=[DashboardMerchant.merchant_id],
        set_={name: getattr(DashboardMerchant, name) + stmt.excluded[name] for name in TOTALS}))
    sums = ("entries", "earns", "issued", "honored")
    stmt = insert(DashboardMember).from_select(["merchant_id", "member_id", *sums], member_sums(in_range))
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=[DashboardMember.merchant_id, DashboardMember.member_id],
        set_={name: getattr(DashboardMember, name) + stmt.excluded[name] for name in sums}))
    earn, redeem = Entry.kind == EntryKind.EARN, Entry.kind == EntryKind.REDEEM
    week = week_start(conn, Entry.created_at)
    weekly = (select(Entry.merchant_id, week, func.sum(case((earn, Entry.points), else_=0)),
                     func.sum(case((redeem, -Entry.points), else_=0)))
              .where(*in_range, Entry.kind.in_([EntryKind.EARN, EntryKind.REDEEM]))
              .group_by(Entry.merchant_id, week))
    stmt = insert(DashboardWeek).from_select(["merchant_id", "week_start", "issued", "honored"], weekly)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=[DashboardWeek.merchant_id, DashboardWeek.week_start],
        set_={name: getattr(DashboardWeek, name) + stmt.excluded[name] for name in ("issued", "honored")}))
    return int((await conn.execute(select(func.count()).where(Entry.id > after, Entry.id <= through))).scalar_one())
