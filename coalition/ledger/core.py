"""Statements every ledger operation shares.

Lock order, the same in every write (so two transactions never wait on each other in a
cycle): the entry row (its unique idempotency key), then the member row, then that
member's lots in id order. Only the member row is contended; merchant and network
accounts are sums over ``postings`` and never updated in place.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    cast,
    exists,
    insert,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from coalition.ledger import idempotency, refusals, rules
from coalition.ledger.idempotency import KeyColumns, find_earlier
from coalition.ledger.models import (
    Account,
    Allocation,
    AllocationKind,
    Entry,
    EntryKind,
    Hold,
    Lot,
    Posting,
    Refusal,
)
from coalition.ledger.rules import MAX_POINTS as MAX_POINTS  # defined with the other rules both paths apply
from coalition.members.models import Member
from coalition.partners.models import Merchant


@dataclass(frozen=True)
class LedgerResult:
    """What a ledger write returns: the transaction, the member after it, the hold if any."""

    entry: Entry
    member: Member
    hold: Hold | None = None
    replayed: bool = False


request_hash = idempotency.request_hash  # where other modules have long found it

# A ledger entry's key: unique per merchant (``merchant_id`` NULL: the network's own entries).
ENTRY_KEYS = KeyColumns(Entry, key="idempotency_key", fingerprint="request_hash", scope=("merchant_id",))


def member_from_row(row: Any) -> Member:
    return Member.from_values(**row._mapping)


def entry_from_row(row: Any) -> Entry:
    return Entry.from_values(**row._mapping)


@dataclass(frozen=True)
class AtEarnRate:
    """An earn's points, computed in the INSERT from the merchant's rate and ``amount_minor``
    (``rules.earn_points``: rounded down)."""

    minor_per_unit: int


# Every statement of the hot path is built once, here or in a cached builder, and run with
# bind parameters: building a Core statement and its cache key per call cost more CPU than
# executing it (docs/benchmarks-journal.md, finding 2).
_ENTRY_VALUES = ("kind", "merchant_id", "amount_minor", "reference", "reverses_id", "hold_id",
                 "idempotency_key", "request_hash", "created_at")


def _build_entry_insert(
    dialect_name: str, member_where: ColumnElement[bool], points: ColumnElement[int], require_active_merchant: bool
) -> Insert:
    """``INSERT INTO entries ... SELECT ... FROM members [JOIN merchants] ON CONFLICT DO NOTHING``.

    Every value but the member's id and (for an earn) the points is a bind parameter named
    ``e_<column>``.
    """
    columns: dict[str, ColumnElement[Any]] = {
        name: bindparam(f"e_{name}", type_=Entry.__table__.c[name].type) for name in _ENTRY_VALUES
    }
    columns |= {"member_id": Member.__table__.c.id, "points": points}
    source: Select[*tuple[Any, ...]] = (
        select(*[value.label(name) for name, value in columns.items()]).select_from(Member)
    )
    if require_active_merchant:
        source = source.join(
            Merchant, and_(Merchant.id == columns["merchant_id"], rules.merchant_may_write(Merchant.status))
        )
    # A key under which a refusal is kept (ledger/refusals.py) inserts nothing either: the caller
    # then finds the refusal and raises it again. One index probe, in the same statement.
    refused = exists().where(Refusal.merchant_id == columns["merchant_id"],
                             Refusal.idempotency_key == columns["idempotency_key"])
    source = source.where(member_where, ~refused)
    make_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    return (
        make_insert(Entry)
        .from_select(list(columns), source, include_defaults=False)
        .on_conflict_do_nothing()
        .returning(Entry.id, Entry.member_id, Entry.points)
    )


def _points_column(at_earn_rate: bool) -> ColumnElement[int]:
    if at_earn_rate:
        return rules.earn_points(bindparam("e_amount_minor", type_=BigInteger), Merchant.earn_rate_points_per_unit,
                                 bindparam("e_minor_per_unit", type_=BigInteger))
    return bindparam("e_points", type_=BigInteger)


@functools.cache
def _entry_insert(dialect_name: str, by_loyalty_id: bool, at_earn_rate: bool, require_active_merchant: bool) -> Insert:
    member_key = Member.loyalty_id if by_loyalty_id else Member.id
    return _build_entry_insert(
        dialect_name, member_key == bindparam("e_member"), _points_column(at_earn_rate), require_active_merchant
    )


async def insert_entry(
    conn: AsyncConnection,
    *,
    kind: EntryKind,
    merchant_id: int | None,
    points: int | AtEarnRate,
    now: dt.datetime,
    idempotency_key: str | None,
    request_hash: str | None,
    member_id: int | None = None,
    loyalty_id: str | None = None,
    amount_minor: int | None = None,
    reference: str | None = None,
    reverses_id: int | None = None,
    hold_id: int | None = None,
    require_active_merchant: bool = True,
) -> tuple[int, int, int] | None:
    """Insert the entry for an active merchant and the member ``member_id`` or ``loyalty_id``.

    Returns ``(entry_id, member_id, points)``, or None when nothing was inserted: the key was
    used before (by an entry or a kept refusal), the merchant is not active, or no member matched.
    One round trip either way.
    """
    if (member_id is None) == (loyalty_id is None):
        raise TypeError("insert_entry takes exactly one of member_id and loyalty_id")
    at_earn_rate = isinstance(points, AtEarnRate)
    params: dict[str, Any] = {
        "e_kind": kind, "e_merchant_id": merchant_id, "e_amount_minor": amount_minor, "e_reference": reference,
        "e_reverses_id": reverses_id, "e_hold_id": hold_id, "e_idempotency_key": idempotency_key,
        "e_request_hash": request_hash, "e_created_at": now,
    }
    if isinstance(points, AtEarnRate):
        params["e_minor_per_unit"] = points.minor_per_unit
    else:
        params["e_points"] = points
    stmt = _entry_insert(conn.dialect.name, loyalty_id is not None, at_earn_rate, require_active_merchant)
    params["e_member"] = loyalty_id if loyalty_id is not None else member_id
    row = (await conn.execute(stmt, params)).first()
    return None if row is None else (row.id, row.member_id, row.points)


async def entry_by_key(conn: AsyncConnection, merchant_id: int | None, key: str) -> Entry | None:
    """The entry stored under this merchant's key (``merchant_id`` None: the network's own entries)."""
    # ``== None`` compiles to IS NULL, which the partial unique index on network keys serves.
    row = (await conn.execute(select(Entry).where(*ENTRY_KEYS.where((merchant_id,), key)))).first()
    return None if row is None else entry_from_row(row)


async def find_by_key(conn: AsyncConnection, merchant_id: int | None, key: str, fingerprint: str) -> Entry | None:
    """The entry an earlier request stored under this key; else the refusal kept under it is raised
    again (``coalition.ledger.refusals``: a recorded success wins); IDEMPOTENCY_KEY_CONFLICT for other input."""
    entry = await find_earlier(conn, ENTRY_KEYS, (merchant_id,), key, fingerprint)
    if entry is None:
        await refusals.raise_if_recorded(conn, merchant_id, key, fingerprint)
    return entry


async def replay(conn: AsyncConnection, entry: Entry) -> LedgerResult:
    member = member_from_row((await conn.execute(select(Member).where(Member.id == entry.member_id))).one())
    hold = None
    hold_id = entry.id if entry.kind == EntryKind.HOLD else entry.hold_id
    if hold_id is not None:
        hold_row = (await conn.execute(select(Hold).where(Hold.id == hold_id))).first()
        hold = Hold(**dict(hold_row._mapping)) if hold_row else None
    return LedgerResult(entry=entry, member=member, hold=hold, replayed=True)


async def replay_by_key(
    conn: AsyncConnection, merchant_id: int | None, key: str, fingerprint: str
) -> LedgerResult | None:
    """Outcomes 1 and 2 of a ledger write (``coalition.ledger.idempotency``): the earlier result under
    the key, replayed, the refusal kept under it raised again, or IDEMPOTENCY_KEY_CONFLICT."""
    earlier = await find_by_key(conn, merchant_id, key, fingerprint)
    return None if earlier is None else await replay(conn, earlier)


async def load_entry(conn: AsyncConnection, entry_id: int) -> Entry:
    return entry_from_row((await conn.execute(select(Entry).where(Entry.id == entry_id))).one())


# FOR NO KEY UPDATE on PostgreSQL: it still lets other transactions insert rows that
# reference the member (entries, lots), which FOR UPDATE would block.
_lock_member = select(Member).where(Member.id == bindparam("m_id")).with_for_update(key_share=True)


async def lock_member(conn: AsyncConnection, member_id: int) -> Member:
    """Read the member row under a row lock (SQLite: the whole database is already ours)."""
    return member_from_row((await conn.execute(_lock_member, {"m_id": member_id})).one())


_add_to_member = (
    update(Member)
    .where(Member.id == bindparam("m_id"))
    .values(
        balance=Member.balance + bindparam("m_balance"),
        held=Member.held + bindparam("m_held"),
        owed=Member.owed + bindparam("m_owed"),
        lifetime_points=Member.lifetime_points + bindparam("m_lifetime_points"),
    )
    .returning(Member)
)


async def add_to_member(
    conn: AsyncConnection, member_id: int, *, balance: int = 0, held: int = 0, owed: int = 0,
    lifetime_points: int = 0,
) -> Member:
    """Add (signed) amounts to the member's counters; the table's CHECKs keep them >= 0."""
    params = {"m_id": member_id, "m_balance": balance, "m_held": held, "m_owed": owed,
              "m_lifetime_points": lifetime_points}
    return member_from_row((await conn.execute(_add_to_member, params)).one())


_insert_posting = insert(Posting)


async def add_postings(conn: AsyncConnection, entry_id: int, legs: Iterable[tuple[Account, int | None, int]]) -> None:
    """Insert an entry's postings; zero legs are dropped, and the rest must sum to zero."""
    rows: list[dict[str, Any]] = [
        {"entry_id": entry_id, "account": account, "account_id": account_id, "points": points}
        for account, account_id, points in legs
        if points
    ]
    if sum(row["points"] for row in rows) != 0:
        raise AssertionError(f"entry {entry_id}: postings do not balance: {rows}")
    if rows:
        await conn.execute(_insert_posting, rows)


@dataclass(frozen=True)
class Slice:
    """Part of a lot taken by one movement."""

    lot_id: int
    issuer_merchant_id: int | None
    points: int


def take_fifo(lots: Sequence[tuple[int, int | None, int]], points: int) -> list[Slice]:
    """Take ``points`` from ``(lot_id, issuer, available)`` rows already in FIFO order."""
    taken: list[Slice] = []
    left = points
    for lot_id, issuer, available in lots:
        if left == 0:
            break
        x = min(available, left)
        if x > 0:
            taken.append(Slice(lot_id, issuer, x))
            left -= x
    if left:
        raise AssertionError(f"lots hold {points - left} points, {points} needed: balance and lots disagree")
    return taken


def _build_open_lots() -> Select[tuple[int, int | None, int]]:
    """The member's open lots in FIFO order (soonest expiry, then id), walked one lot at a time
    along ix_lots_open while the lots so far hold less than was asked: a redemption reads the
    lots it spends, however many more the member holds."""
    member = bindparam("l_member_id", type_=BigInteger)
    points = bindparam("l_points", type_=BigInteger)
    # The 0 is written into the SQL, not bound: PostgreSQL's generic plan of a prepared statement
    # cannot tell that a bound value satisfies ix_lots_open's predicate (remaining > 0), and
    # planned a scan of the whole lots table instead.
    zero = literal_column("0", BigInteger)
    lots = Lot.__table__
    first = (
        select(Lot.id, Lot.issuer_merchant_id, Lot.remaining, Lot.expires_at,
               cast(zero, BigInteger).label("points_ahead"))
        .where(Lot.member_id == member, Lot.remaining > zero)
        .order_by(*rules.fifo(lots))
        .limit(1)
        .subquery()
    )
    walk = select(first).cte("walk", recursive=True)
    later = lots.alias()
    following = (
        select(later.c.id)
        .where(later.c.member_id == member, later.c.remaining > zero,
               tuple_(*rules.fifo(later)) > tuple_(*rules.fifo(walk)))
        .order_by(*rules.fifo(later))
        .limit(1)
        .scalar_subquery()
    )
    walk = walk.union_all(
        select(Lot.id, Lot.issuer_merchant_id, Lot.remaining, Lot.expires_at,
               (walk.c.points_ahead + walk.c.remaining).label("points_ahead"))
        .join_from(walk, Lot, Lot.id == following)
        .where(walk.c.points_ahead + walk.c.remaining < points)
    )
    return select(walk.c.id, walk.c.issuer_merchant_id, walk.c.remaining).order_by(*rules.fifo(walk))


_open_lots = _build_open_lots()


async def open_lots(conn: AsyncConnection, member_id: int, points: int) -> list[tuple[int, int | None, int]]:
    """The member's lots with points left, soonest expiry first (FIFO), up to the first that covers ``points``.

    Every open lot when they hold fewer than ``points`` in all.
    """
    rows = await conn.execute(_open_lots, {"l_member_id": member_id, "l_points": points})
    return [(r.id, r.issuer_merchant_id, r.remaining) for r in rows]


_lot_delta = (
    update(Lot)
    .where(Lot.id == bindparam("b_lot_id"))
    .values(remaining=Lot.remaining + bindparam("b_delta"))
    .execution_options(synchronize_session=False)
)


async def move_lot_points(conn: AsyncConnection, deltas: dict[int, int]) -> None:
    """Add (or with a negative delta, remove) points to lots, in lot id order."""
    params = [{"b_lot_id": lot_id, "b_delta": delta} for lot_id, delta in sorted(deltas.items()) if delta]
    if params:
        await conn.execute(_lot_delta, params)


_insert_allocation = insert(Allocation)


async def add_allocations(
    conn: AsyncConnection,
    *,
    entry_id: int,
    member_id: int,
    merchant_id: int | None,
    kind: AllocationKind,
    slices: Iterable[Slice],
    now: dt.datetime,
    hold_id: int | None = None,
) -> None:
    rows = [
        {
            "entry_id": entry_id,
            "lot_id": s.lot_id,
            "hold_id": hold_id,
            "member_id": member_id,
            "issuer_merchant_id": s.issuer_merchant_id,
            "merchant_id": merchant_id,
            "kind": kind,
            "points": s.points,
            "created_at": now,
        }
        for s in slices
        if s.points
    ]
    if rows:
        await conn.execute(_insert_allocation, rows)
