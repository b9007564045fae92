"""Loading the analysis inputs from the database: one query per input, straight into arrays.

On PostgreSQL each query aggregates its columns with ``array_agg`` into a single row, which
asyncpg decodes in C into Python lists (about ten times faster than a row per record); on
SQLite rows are read in chunks. Either way the result is one numpy array per column, the
plain data ``coalition.network`` analyses take (``coalition.network.graphs``).

Members' contact columns are their *fingerprints* (``Member.email_fingerprint``,
``phone_fingerprint``: the blind index of a canonical form that one person's variants share,
``coalition.members.contact``), not the exact blind index: that one is unique, so it could
never link two members. They go into ``Members.email_index`` / ``phone_index``, which is what
``fraud.shared_contacts`` groups by.

What is left out: reversed earns and redemptions (their reversal cancels them), holds that
were never captured, and the network's own bonuses (they are not purchases).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BigInteger, ColumnElement, Integer, Select, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from coalition.db import Database
from coalition.ledger.models import Allocation, AllocationKind, Entry, EntryKind, Hold
from coalition.members.models import Member
from coalition.network.graphs import EARN, NETWORK, REDEEM, Flows, IntArray, Members, Purchases, Referrals
from coalition.partners.models import Merchant

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MerchantInfo:
    id: int
    name: str
    category: str | None
    active: bool


@dataclass(frozen=True, eq=False)
class NetworkData:
    """Everything one analysis run reads, as of ``as_of`` (epoch seconds)."""

    as_of: int
    merchants: list[MerchantInfo]
    members: Members
    enrolled_by: IntArray  # per member (same order as ``members.ids``): enrolling merchant, -1 if none
    referrals: Referrals
    purchases: Purchases
    flows: Flows


def epoch(conn: AsyncConnection, column: Any) -> ColumnElement[int]:
    """Epoch seconds (UTC) of a timestamp column, computed by the database."""
    if conn.dialect.name == "postgresql":
        return cast(func.extract("epoch", column), BigInteger)
    # UTCDateTime stores naive UTC text on SQLite: strftime reads it as UTC.
    return cast(func.strftime("%s", column), Integer)


async def _columns(conn: AsyncConnection, query: Select[*tuple[Any, ...]], names: list[str]) -> dict[str, list[Any]]:
    """Run ``query`` and return its columns as lists (one array_agg row on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        sub = query.subquery()
        row = (await conn.execute(select(*[func.array_agg(sub.c[name]) for name in names]))).one()
        return {name: list(values or []) for name, values in zip(names, row, strict=True)}
    result = await conn.execute(query)
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for chunk in result.partitions(50_000):
        for name, values in zip(names, zip(*chunk, strict=True), strict=True):
            columns[name].extend(values)
    return columns


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_CHUNK = 8 << 20  # bytes parsed at once


async def _copy_ints(conn: AsyncConnection, query: Select[*tuple[Any, ...]], names: list[str]) -> dict[str, IntArray]:
    """PostgreSQL: stream ``query``'s columns (integers, never NULL) as ``COPY ... (FORMAT binary)``
    straight into int64 arrays.

    Every row of such a result has the same size (a field count, then a length and 8 bytes per
    column), so each chunk is one numpy structured-array view: no Python object per value, and the
    memory held is the arrays plus one chunk, not a list of Python ints per column (which took
    ~2 GB for 10 million purchases).
    """
    sub = query.subquery()
    typed = select(*[cast(sub.c[name], BigInteger).label(name) for name in names])
    sql = str(typed.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    row = np.dtype([("fields", ">i2"), *[(f, t) for name in names for f, t in ((f"{name}_len", ">i4"), (name, ">i8"))]])
    parts: dict[str, list[IntArray]] = {name: [] for name in names}
    pending = bytearray()
    header_left = True

    def parse(final: bool) -> None:
        nonlocal header_left
        start = 0
        if header_left:
            if len(pending) < 19:
                return
            if bytes(pending[:11]) != COPY_SIGNATURE:
                raise ValueError("not a PostgreSQL binary COPY stream")
            start = 19 + int.from_bytes(pending[15:19], "big")
            header_left = False
        whole = (len(pending) - start) // row.itemsize
        if final:  # the trailer: a field count of -1
            whole = (len(pending) - start - 2) // row.itemsize
        if whole > 0:
            records = np.frombuffer(pending, dtype=row, count=whole, offset=start)
            if (records["fields"] != len(names)).any() or any((records[f"{n}_len"] != 8).any() for n in names):
                raise ValueError("binary COPY row is not one non-NULL bigint per column")
            for name in names:
                parts[name].append(records[name].astype(np.int64))
            del records
            start += whole * row.itemsize
        del pending[:start]

    async def sink(chunk: bytes) -> None:
        pending.extend(chunk)
        if len(pending) >= COPY_CHUNK:
            parse(False)

    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    await raw.copy_from_query(sql, output=sink, format="binary")
    parse(True)
    if header_left or bytes(pending) != b"\xff\xff":
        raise ValueError("binary COPY stream ended early")
    columns: dict[str, IntArray] = {}
    for name in names:
        columns[name] = np.concatenate(parts.pop(name)) if parts[name] else np.zeros(0, dtype=np.int64)
    return columns


async def _int_columns(conn: AsyncConnection, query: Select[*tuple[Any, ...]], names: list[str]) -> dict[str, IntArray]:
    """``query``'s integer columns as int64 arrays: binary COPY on PostgreSQL, ``_columns`` elsewhere."""
    if conn.dialect.name == "postgresql":
        return await _copy_ints(conn, query, names)
    return {name: _ints(values) for name, values in (await _columns(conn, query, names)).items()}


def _ints(values: list[Any]) -> IntArray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _objects(values: list[Any]) -> NDArray[Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


async def load_merchants(conn: AsyncConnection) -> list[MerchantInfo]:
    rows = await conn.execute(select(Merchant.id, Merchant.name, Merchant.category, Merchant.status)
                              .order_by(Merchant.id))
    return [MerchantInfo(r.id, r.name, r.category, r.status == "ACTIVE") for r in rows]


async def load_members(conn: AsyncConnection) -> tuple[Members, IntArray]:
    names = ["id", "enrolled_at", "email_index", "phone_index", "enrolled_by"]
    query = select(
        Member.id.label("id"), epoch(conn, Member.created_at).label("enrolled_at"),
        Member.email_fingerprint.label("email_index"), Member.phone_fingerprint.label("phone_index"),
        func.coalesce(Member.enrolled_by_merchant_id, literal(-1)).label("enrolled_by"),
    ).order_by(Member.id)
    c = await _columns(conn, query, names)
    members = Members(_ints(c["id"]), _ints(c["enrolled_at"]), _objects(c["email_index"]),
                      _objects(c["phone_index"]))
    return members, _ints(c["enrolled_by"])


async def load_referrals(conn: AsyncConnection) -> Referrals:
    names = ["referrer", "referee", "enrolled_at"]
    query = select(
        Member.referred_by_id.label("referrer"), Member.id.label("referee"),
        epoch(conn, Member.created_at).label("enrolled_at"),
    ).where(Member.referred_by_id.is_not(None))
    c = await _int_columns(conn, query, names)
    return Referrals(c["referrer"], c["referee"], c["enrolled_at"])


def effective_time(entry: Any = Entry) -> Any:
    """When a ledger entry took effect: ``effective_at`` where the ledger has that column (an
    import places activity at its original date) and it is set, else ``created_at``."""
    effective = getattr(entry, "effective_at", None)
    return entry.created_at if effective is None else func.coalesce(effective, entry.created_at)


async def load_purchases(conn: AsyncConnection) -> Purchases:
    """Earns, redemptions and captures that were not reversed; points always >= 0; ``times`` is
    each entry's effective time (``effective_time``)."""
    reversal = aliased(Entry)
    names = ["member", "merchant", "points", "amount", "at", "kind"]
    # A subquery, not an outer join: only captures have a hold, and joining every earn and
    # redemption to holds cost PostgreSQL a tenth of this query's time.
    captured = select(Hold.captured_points).where(Hold.id == Entry.hold_id).scalar_subquery()
    honored = case(
        (Entry.kind == EntryKind.EARN, Entry.points),
        (Entry.kind == EntryKind.REDEEM, -Entry.points),
        else_=func.coalesce(captured, 0),
    )
    query = (
        select(
            Entry.member_id.label("member"), Entry.merchant_id.label("merchant"), honored.label("points"),
            func.coalesce(Entry.amount_minor, 0).label("amount"), epoch(conn, effective_time()).label("at"),
            case((Entry.kind == EntryKind.EARN, literal(EARN)), else_=literal(REDEEM)).label("kind"),
        )
        .where(Entry.kind.in_([EntryKind.EARN, EntryKind.REDEEM, EntryKind.CAPTURE]),
               Entry.merchant_id.is_not(None),
               ~select(reversal.id).where(reversal.reverses_id == Entry.id).exists())
    )
    c = await _int_columns(conn, query, names)
    return Purchases(c.pop("member"), c.pop("merchant"), c.pop("points"), c.pop("amount"), c.pop("at"),
                     c.pop("kind").astype(np.int8))


async def load_flows(conn: AsyncConnection) -> Flows:
    """Points honored per (issuer, redeemer), net of reversed redemptions; the network issuer is -1."""
    names = ["issuer", "redeemer", "points"]
    signed = case((Allocation.kind == AllocationKind.RESTORE, -Allocation.points), else_=Allocation.points)
    issuer = func.coalesce(Allocation.issuer_merchant_id, literal(NETWORK))
    query = (
        select(issuer.label("issuer"), Allocation.merchant_id.label("redeemer"), func.sum(signed).label("points"))
        .where(Allocation.kind.in_([AllocationKind.REDEEM, AllocationKind.CAPTURE, AllocationKind.RESTORE]),
               Allocation.merchant_id.is_not(None))
        .group_by(issuer, Allocation.merchant_id)
    )
    c = await _int_columns(conn, query, names)
    return Flows(c["issuer"], c["redeemer"], c["points"])


async def load_network(
    db: Database, *, progress: Progress | None = None, now: dt.datetime | None = None
) -> NetworkData:
    """Read every input of an analysis run in one read transaction (a consistent snapshot on PostgreSQL)."""
    report = progress or (lambda stage: None)
    as_of = int((now or dt.datetime.now(dt.UTC)).timestamp())
    async with db.read() as conn:
        if conn.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        report("merchants")
        merchants = await load_merchants(conn)
        report("members")
        members, enrolled_by = await load_members(conn)
        report("referrals")
        referrals = await load_referrals(conn)
        report("purchases")
        purchases = await load_purchases(conn)
        report("flows")
        flows = await load_flows(conn)
    return NetworkData(as_of=as_of, merchants=merchants, members=members, enrolled_by=enrolled_by,
                       referrals=referrals, purchases=purchases, flows=flows)
