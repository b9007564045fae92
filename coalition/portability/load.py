"""Writing a validated import file in one transaction, in chunks, fast.

PostgreSQL: ids drawn from the tables' sequences in one statement a chunk, then COPY
(asyncpg ``copy_records_to_table``) into members, entries, postings and lots. Nothing is
updated after it is written: each member row carries its final balance (its opening balance
plus its earn rows, summed by the validation pass). SQLite: Core ``executemany`` with ids
counted from the largest (the transaction holds the write lock: BEGIN IMMEDIATE).

Every row is what the ledger's own earn writes (``coalition.ledger.core``): an EARN entry,
its two postings (ISSUED by the merchant, MEMBER), a lot, and the member's balance and
lifetime points; ``assert_ledger_consistent`` holds after it. Memory: one chunk at a time, and
the ``MemberIndex`` (32 bytes a member).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import asyncpg
import numpy as np
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import Conflict
from coalition.ledger.idempotency import IMPORTED_REQUEST_HASH
from coalition.ledger.long_writes import announce_long_write
from coalition.ledger.models import Entry, Lot, Posting
from coalition.members.contact import email_fingerprint, phone_fingerprint
from coalition.members.models import Member
from coalition.network.bulkload import random_codes
from coalition.portability.reader import MemberIndex, Record, Scan

CHUNK = 5000
REQUEST_HASH = IMPORTED_REQUEST_HASH  # a replay of an import key through the API is IDEMPOTENCY_KEY_CONFLICT
MEMBER_COLUMNS = ("id", "loyalty_id", "referral_code", "email_encrypted", "phone_encrypted", "email_index",
                  "phone_index", "email_fingerprint", "phone_fingerprint", "balance", "held", "owed",
                  "lifetime_points", "enrolled_by_merchant_id", "enroll_idempotency_key", "enroll_request_hash",
                  "created_at")
ENTRY_COLUMNS = ("id", "kind", "member_id", "merchant_id", "points", "amount_minor", "reference", "idempotency_key",
                 "request_hash", "created_at", "effective_at")
POSTING_COLUMNS = ("entry_id", "account", "account_id", "points")
LOT_COLUMNS = ("id", "member_id", "entry_id", "issuer_merchant_id", "points", "remaining", "expires_at", "reversed",
               "created_at")


class ImportCollision(Conflict):
    code = "IMPORT_CONFLICT"


@dataclass(frozen=True)
class Loaded:
    members: int
    entries: int
    postings: int


async def already_imported(db: Database, merchant_id: int, key: str) -> bool:
    async with db.read() as conn:
        return (await conn.execute(select(Member.id).where(
            Member.enrolled_by_merchant_id == merchant_id, Member.enroll_idempotency_key == key))).first() is not None


async def skip_foreign_key_triggers(conn: AsyncConnection, merchant_id: int) -> None:
    """As a PostgreSQL superuser, skip the per-row foreign-key triggers for this transaction.

    Every reference an import writes is one it made in this transaction (member, entry and
    lot ids drawn from the sequences) or the merchant, whose row is locked here (FOR KEY
    SHARE: it cannot go away until the commit) — so the checks cannot fail, and they were
    most of the load's time (100 µs a row against 20; bulkload.py does the same). Without
    superuser rights the triggers run: slower, equally correct.
    """
    if conn.dialect.name != "postgresql":
        return
    await conn.execute(text("SELECT id FROM merchants WHERE id = :m FOR KEY SHARE"), {"m": merchant_id})
    if (await conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))).scalar():
        await conn.execute(text("SET LOCAL session_replication_role = replica"))


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk


class _Writer:
    """Ids and rows, the fast way for the dialect."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self._next: dict[str, int] = {}
        self._sequences: dict[str, int] = {}

    async def raw(self) -> Any:
        """The asyncpg connection under this transaction: array parameters and results without
        SQLAlchemy's per-value processing (a third of the load's statements' time)."""
        raw = await self.conn.get_raw_connection()
        return raw.driver_connection

    async def ids(self, wanted: Sequence[tuple[Table, int]]) -> list[list[int]]:
        """``n`` new ids for each (table, n): on PostgreSQL from the sequences, in one round trip."""
        if self.postgres:  # arrays: cheaper to send and decode than rows
            raw = await self.raw()
            for table, _ in wanted:  # the sequence's name once: pg_get_serial_sequence per row costs 7 x nextval
                if table.name not in self._sequences:
                    self._sequences[table.name] = await raw.fetchval(
                        "SELECT pg_get_serial_sequence($1, 'id')::regclass::oid", table.name)
            sql = ", ".join(f"ARRAY(SELECT nextval(${2 * i - 1}::oid) FROM generate_series(1, ${2 * i}))"
                            for i in range(1, len(wanted) + 1))
            row = await raw.fetchrow(f"SELECT {sql}", *(v for table, n in wanted
                                                         for v in (self._sequences[table.name], n)))
            return [list(values) for values in row]
        found = []
        for table, n in wanted:
            if table.name not in self._next:
                top = (await self.conn.execute(select(func.coalesce(func.max(table.c.id), 0)))).scalar_one()
                self._next[table.name] = int(top) + 1
            first = self._next[table.name]
            self._next[table.name] = first + n
            found.append(list(range(first, first + n)))
        return found

    async def write(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            await (await self.raw()).copy_records_to_table(table.name, records=rows, columns=list(columns))
        else:
            await self.conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


async def load_file(
    db: Database, keys: NetworkKeys, *, merchant_id: int, scan: Scan, now: dt.datetime, expiry: dt.timedelta,
    members: Iterable[Record], earns: Iterable[Record], member_key: Callable[[str], str],
    earn_key: Callable[[int], str], progress: Callable[[str, int, int], None], index: MemberIndex,
) -> Loaded | None:
    """Write the file's members, then its earn rows; None when its keys were taken meanwhile.

    Pipelined: while PostgreSQL writes one chunk, a thread builds the next one's rows (the
    encryption and hashing are most of a row's Python time), so the two cores work at once.
    """
    counts = {"members": 0, "entries": 0}
    try:
        async with db.transaction() as conn:
            await announce_long_write(conn)  # the dashboard rollup waits for it (ledger/long_writes.py)
            writer = _Writer(conn)
            if writer.postgres:
                # One long transaction of many statements, the file parsed between them: neither the
                # statement limit nor the idle limit meant for API requests (coalition/app.py).
                await conn.execute(text("SET LOCAL statement_timeout = 0"))
                await conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            await skip_foreign_key_triggers(conn, merchant_id)
            plan = _Plan(writer, keys, merchant_id, now, expiry, member_key, earn_key, index)
            stages: tuple[tuple[Iterable[Record], Any, Any, str, int], ...] = (
                (members, plan.prepare_members, plan.build_members, "loading members", scan.members),
                (earns, plan.prepare_earns, plan.build_earns, "loading history", scan.earns))
            for records, prepare, build, stage, total in stages:
                pending: _Rows | None = None
                done = 0
                for chunk in _chunks(records, CHUNK):
                    prepared = await prepare(chunk)  # the connection is idle between writes
                    if pending is None:
                        pending = await asyncio.to_thread(build, chunk, prepared)
                        continue
                    _, pending = await asyncio.gather(plan.write(pending, counts),
                                                      asyncio.to_thread(build, chunk, prepared))
                    done += CHUNK
                    progress(stage, done, total)
                if pending is not None:
                    await plan.write(pending, counts)
                progress(stage, total, total)
    except (IntegrityError, asyncpg.UniqueViolationError):
        if await already_imported(db, merchant_id, member_key(scan.first_external_id or "")):
            return None
        raise ImportCollision(
            "a contact in the file was enrolled while the import ran, so nothing was imported: run it again to "
            "see which line") from None
    return Loaded(counts["members"], counts["entries"], 2 * counts["entries"])


@dataclass
class _Rows:
    """One chunk's rows for every table."""

    members: list[tuple[Any, ...]]
    entries: list[tuple[Any, ...]]
    postings: list[tuple[Any, ...]]
    lots: list[tuple[Any, ...]]
    member_count: int


class _Plan:
    """prepare (ids: the database) -> build (rows: pure Python, in a thread) -> write (COPY).

    Members are written once, with their final balance (opening balance plus their earn rows,
    summed during validation: ``MemberIndex``), so the load never updates a row it wrote;
    earn rows take their member's id from the index.
    """

    def __init__(self, writer: _Writer, keys: NetworkKeys, merchant_id: int, now: dt.datetime,
                 expiry: dt.timedelta, member_key: Callable[[str], str], earn_key: Callable[[int], str],
                 index: MemberIndex) -> None:
        self.writer, self.keys, self.merchant_id, self.now = writer, keys, merchant_id, now
        self.expires = now + expiry
        self.member_key, self.earn_key = member_key, earn_key
        self.index = index
        self.members_seen = 0  # members prepared so far: the next chunk's place in the file

    async def prepare_members(self, chunk: list[Record]) -> tuple[int, list[int], list[int], list[int]]:
        funded = sum(1 for r in chunk if r.points > 0)
        member_ids, entry_ids, lot_ids = await self.writer.ids(
            ((Member.__table__, len(chunk)), (Entry.__table__, funded), (Lot.__table__, funded)))  # type: ignore[arg-type]
        first, self.members_seen = self.members_seen, self.members_seen + len(chunk)
        return first, member_ids, entry_ids, lot_ids

    def build_members(self, chunk: list[Record], prepared: tuple[int, list[int], list[int], list[int]]) -> _Rows:
        keys, merchant_id, now, member_key = self.keys, self.merchant_id, self.now, self.member_key
        first, member_ids, entry_ids, lot_ids = prepared
        self.index.ids[first:first + len(chunk)] = member_ids
        earned = self.index.earned[first:first + len(chunk)].tolist()
        rng = np.random.default_rng(secrets.randbits(128))
        loyalty_ids = random_codes(len(chunk), loyalty=True, rng=rng)
        referral_codes = random_codes(len(chunk), loyalty=False, rng=rng)
        blind_index = keys.blind_index
        sealed = iter(keys.encrypt_many([v for r in chunk for v in (r.email, r.phone) if v]))
        rows = []
        for mid, r, loyalty_id, referral_code, history in zip(member_ids, chunk, loyalty_ids, referral_codes, earned,
                                                              strict=True):
            email, phone = r.email, r.phone
            balance = r.points + history
            rows.append((
                mid, loyalty_id, referral_code,
                next(sealed) if email else None, next(sealed) if phone else None,
                r.email_index or blind_index("email", email) if email else None,
                r.phone_index or blind_index("phone", phone) if phone else None,
                email_fingerprint(keys, email), phone_fingerprint(keys, phone),
                balance, 0, 0, balance, merchant_id, member_key(r.external_id), REQUEST_HASH, now))
        funded = [(mid, r) for mid, r in zip(member_ids, chunk, strict=True) if r.points > 0]
        opened = [(eid, lid, mid, r.points, None, r.reference or "opening balance", member_key(r.external_id) + ":b",
                   r.date) for eid, lid, (mid, r) in zip(entry_ids, lot_ids, funded, strict=True)]
        return self._ledger_rows(opened, rows, len(chunk))

    async def prepare_earns(self, chunk: list[Record]) -> tuple[list[int], list[int]]:
        entry_ids, lot_ids = await self.writer.ids(
            ((Entry.__table__, len(chunk)), (Lot.__table__, len(chunk))))  # type: ignore[arg-type]
        return entry_ids, lot_ids

    def build_earns(self, chunk: list[Record], prepared: tuple[list[int], list[int]]) -> _Rows:
        entry_ids, lot_ids = prepared
        member_ids = self.index.member_ids([r.external_id for r in chunk])  # validation saw each member row
        earned = [(eid, lid, mid, r.points, r.amount_minor, r.reference, self.earn_key(r.line), r.date)
                  for eid, lid, mid, r in zip(entry_ids, lot_ids, member_ids, chunk, strict=True)]
        return self._ledger_rows(earned, [], 0)

    def _ledger_rows(self, earned: list[tuple[Any, ...]], members: list[tuple[Any, ...]], member_count: int) -> _Rows:
        """EARN entries (entry id, lot id, member, points, amount, reference, key, effective date)."""
        merchant_id, now, expires = self.merchant_id, self.now, self.expires
        entries = [(eid, "EARN", mid, merchant_id, points, amount, reference, key, REQUEST_HASH, now, effective)
                   for eid, _, mid, points, amount, reference, key, effective in earned]
        postings = []
        for eid, _, mid, points, *_ in earned:
            postings.append((eid, "ISSUED", merchant_id, -points))
            postings.append((eid, "MEMBER", mid, points))
        lots = [(lid, mid, eid, merchant_id, points, points, expires, False, now)
                for eid, lid, mid, points, *_ in earned]
        return _Rows(members, entries, postings, lots, member_count)

    async def write(self, rows: _Rows, counts: dict[str, int]) -> None:
        writer = self.writer
        await writer.write(Member.__table__, MEMBER_COLUMNS, rows.members)  # type: ignore[arg-type]
        await writer.write(Entry.__table__, ENTRY_COLUMNS, rows.entries)  # type: ignore[arg-type]
        await writer.write(Posting.__table__, POSTING_COLUMNS, rows.postings)  # type: ignore[arg-type]
        await writer.write(Lot.__table__, LOT_COLUMNS, rows.lots)  # type: ignore[arg-type]
        counts["members"] += rows.member_count
        counts["entries"] += len(rows.entries)


async def _members(writer: _Writer, chunk: list[Record], counts: dict[str, int], plan: _Plan) -> None:
    """One chunk of member rows, without the pipeline (bench/import_members.py's baseline)."""
    plan.writer = writer
    await plan.write(plan.build_members(chunk, await plan.prepare_members(chunk)), counts)


async def _earns(writer: _Writer, chunk: list[Record], counts: dict[str, int], plan: _Plan) -> None:
    """One chunk of earn rows, without the pipeline (the baseline)."""
    plan.writer = writer
    await plan.write(plan.build_earns(chunk, await plan.prepare_earns(chunk)), counts)
