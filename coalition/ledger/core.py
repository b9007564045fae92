"""Statements every ledger operation shares.

Lock order, the same in every write (so two transactions never wait on each other in a
cycle): the entry row (its unique idempotency key), then the member row, then that
member's lots in id order. Only the member row is contended; merchant and network
accounts are sums over ``postings`` and never updated in place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.errors import IdempotencyKeyConflict
from coalition.ledger.models import Account, Allocation, AllocationKind, Entry, EntryKind, Hold, Lot, Posting
from coalition.members.models import Member
from coalition.partners.models import Merchant, MerchantStatus

MAX_POINTS = 2**31 - 1  # GraphQL Int: no balance or amount may pass it


@dataclass(frozen=True)
class LedgerResult:
    """What a ledger write returns: the transaction, the member after it, the hold if any."""

    entry: Entry
    member: Member
    hold: Hold | None = None
    replayed: bool = False


def request_hash(operation: str, **fields: Any) -> str:
    """Fingerprint of a request, to tell a retry from a different request under the same key."""
    canonical = json.dumps({"op": operation, **fields}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def dialect_insert(conn: AsyncConnection) -> Callable[..., Any]:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def member_from_row(row: Any) -> Member:
    return Member(**dict(row._mapping))


def entry_from_row(row: Any) -> Entry:
    return Entry(**dict(row._mapping))


async def insert_entry(
    conn: AsyncConnection,
    *,
    kind: EntryKind,
    merchant_id: int | None,
    member_where: ColumnElement[bool],
    points: int | ColumnElement[int],
    now: dt.datetime,
    idempotency_key: str | None,
    request_hash: str | None,
    amount_minor: int | None = None,
    reference: str | None = None,
    reverses_id: int | None = None,
    hold_id: int | None = None,
    require_active_merchant: bool = True,
) -> tuple[int, int, int] | None:
    """Insert the entry for an active merchant and the member matching ``member_where``.

    ``points`` may be an expression over ``merchants`` (the earn rate). Returns
    ``(entry_id, member_id, points)``, or None when nothing was inserted: the key was used
    before, the merchant is not active, or no member matched. One round trip either way.
    """
    columns = {
        "kind": literal(kind.value),
        "member_id": Member.id,
        "merchant_id": literal(merchant_id),
        "points": points if isinstance(points, ColumnElement) else literal(points),
        "amount_minor": literal(amount_minor),
        "reference": literal(reference),
        "reverses_id": literal(reverses_id),
        "hold_id": literal(hold_id),
        "idempotency_key": literal(idempotency_key),
        "request_hash": literal(request_hash),
        "created_at": literal(now, Entry.created_at.type),
    }
    source: Select[*tuple[Any, ...]] = (
        select(*[value.label(name) for name, value in columns.items()]).select_from(Member)
    )
    if require_active_merchant:
        source = source.join(Merchant, and_(Merchant.id == merchant_id, Merchant.status == MerchantStatus.ACTIVE))
    source = source.where(member_where)
    stmt = (
        dialect_insert(conn)(Entry)
        .from_select(list(columns), source, include_defaults=False)
        .on_conflict_do_nothing()
        .returning(Entry.id, Entry.member_id, Entry.points)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else (row.id, row.member_id, row.points)


async def find_by_key(conn: AsyncConnection, merchant_id: int, key: str, fingerprint: str) -> Entry | None:
    """The entry an earlier request stored under this key, or IDEMPOTENCY_KEY_CONFLICT."""
    row = (
        await conn.execute(select(Entry).where(Entry.merchant_id == merchant_id, Entry.idempotency_key == key))
    ).first()
    if row is None:
        return None
    entry = entry_from_row(row)
    if entry.request_hash != fingerprint:
        raise IdempotencyKeyConflict(key)
    return entry


async def replay(conn: AsyncConnection, entry: Entry) -> LedgerResult:
    member = member_from_row((await conn.execute(select(Member).where(Member.id == entry.member_id))).one())
    hold = None
    hold_id = entry.id if entry.kind == EntryKind.HOLD else entry.hold_id
    if hold_id is not None:
        hold_row = (await conn.execute(select(Hold).where(Hold.id == hold_id))).first()
        hold = Hold(**dict(hold_row._mapping)) if hold_row else None
    return LedgerResult(entry=entry, member=member, hold=hold, replayed=True)


async def merchant_is_active(conn: AsyncConnection, merchant_id: int) -> bool:
    status = (await conn.execute(select(Merchant.status).where(Merchant.id == merchant_id))).scalar()
    return status == MerchantStatus.ACTIVE


async def load_entry(conn: AsyncConnection, entry_id: int) -> Entry:
    return entry_from_row((await conn.execute(select(Entry).where(Entry.id == entry_id))).one())


async def lock_member(conn: AsyncConnection, member_id: int) -> Member:
    """Read the member row under a row lock (SQLite: the whole database is already ours)."""
    row = (await conn.execute(select(Member).where(Member.id == member_id).with_for_update(key_share=True))).one()
    return member_from_row(row)


async def update_member(conn: AsyncConnection, member_id: int, **values: Any) -> Member:
    row = (await conn.execute(update(Member).where(Member.id == member_id).values(**values).returning(Member))).one()
    return member_from_row(row)


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
        await conn.execute(insert(Posting).values(rows))


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


async def open_lots(conn: AsyncConnection, member_id: int) -> list[tuple[int, int | None, int]]:
    """The member's lots with points left, soonest expiry first (FIFO)."""
    rows = await conn.execute(
        select(Lot.id, Lot.issuer_merchant_id, Lot.remaining)
        .where(Lot.member_id == member_id, Lot.remaining > 0)
        .order_by(Lot.expires_at, Lot.id)
    )
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
        await conn.execute(insert(Allocation).values(rows))
