"""Settlement runs: close every unsettled ledger entry up to a period end into one signed batch.

Exactly once, without a marker per entry: batch ``n`` covers the entries with
``batch[n-1].through_entry_id < id <= batch[n].through_entry_id``, so consecutive
batches tile the entry ids and no entry can be in two. The high-water mark is the
largest id of an entry created before ``periodEnd``, read safely:

- PostgreSQL: in a short transaction of its own, ``LOCK TABLE entries IN SHARE MODE``
  waits for every in-flight ledger write (they hold ROW EXCLUSIVE) and holds new ones
  off for the instant it takes to read ``max(id)``; so every id up to the mark is
  committed or rolled back for good, and a later write gets a larger id. Entries,
  postings and allocations of one transaction commit together and are append-only, so
  the aggregation afterwards needs no lock.
- SQLite: the run is one ``BEGIN IMMEDIATE`` transaction, which already excludes writers.

Runs are serialized by ``pg_advisory_xact_lock`` (SQLite: the write lock) held by the
transaction that writes the batch; ``settlement_batches.seq``, ``previous_batch_id`` and
``idempotency_key`` are unique as the last line. A second run waits, then sees the
first's batch: the same idempotency key returns it (``replayed``), a ``periodEnd`` not
after it is refused with ``PERIOD_END_NOT_AFTER_LAST_BATCH``. An entry created at or
after ``periodEnd`` but with a smaller id than one before it (clock skew between
concurrent writers) settles with the ids around it: the id decides, never the clock.

A closed batch is never updated; a reversal of a settled transaction settles in a later
batch as an ADJUSTMENT line naming the original (see :mod:`coalition.settlement.compute`).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import datetime as dt
import functools
import gc
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Change, Database, note_change, noting_changes, utcnow
from coalition.errors import check_idempotency_key
from coalition.giftcards.models import GiftEntry
from coalition.ledger.idempotency import KeyColumns, Outcomes, find_earlier
from coalition.ledger.models import Entry
from coalition.settlement import netting, statements
from coalition.settlement.compute import STEPS, Line, Progress, SettlementFigures, read_settlement_window
from coalition.settlement.errors import BatchNotFound, InvalidPeriodEnd, SettlementRaced, StatementKeyMismatch
from coalition.settlement.models import LineKind, ProgramCost, SettlementBatch, SettlementLine, SettlementPosition
from coalition.settlement.policy import policy_versions
from coalition.settlement.pricing import price_window
from coalition.settlement.windows import store_window

# pg_advisory_xact_lock key for settlement runs: "SETL" in ASCII.
SETTLEMENT_LOCK_KEY = 0x5345544C


# The statements of a dense batch are ~90 MB of JSON: lz4 compresses them about four times
# faster than PostgreSQL's default pglz (docs/benchmarks-journal.md, "Settlement"). For this transaction
# only, and only where the server has lz4 (PostgreSQL 14+ built with it).
_LZ4_STATEMENTS = text(
    "SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings "
    "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a run builds its lines.

    A dense batch allocates a few hundred thousand objects that live until the batch is
    written, none of them in a reference cycle; each collection the allocations set off
    walks all of them again (pricing a dense batch: 0.69 s with collection, 0.49 s without).
    Reference counting still frees everything; collection resumes at once afterwards.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True)
class RunResult:
    batch: SettlementBatch
    replayed: bool = False


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def line_document(line: Line) -> dict[str, Any]:
    """A line in a statement; ``program`` only on a program's line (a plain line's text is as before it existed)."""
    document: dict[str, Any] = {
        "kind": line.kind.value, "policyId": line.policy.id, "issuerMerchantId": line.issuer,
        "redeemerMerchantId": line.redeemer, "points": line.points, "issuerMinor": line.issuer_minor,
        "redeemerMinor": line.redeemer_minor, "exactMinor": str(line.exact_minor),
        "reversalEntryId": line.reversal_entry_id, "originalEntryId": line.original_entry_id,
        "originalBatchId": line.original_batch_id,
    }
    if line.program is not None:
        document["program"] = line.program.value
    return document


def line_text(line: Line) -> str:
    """``statements.canonical(line_document(line))``, written out: keys in sorted order, ints,
    null, and ASCII strings that JSON leaves as they are (kind names, decimal strings)."""
    return (f'{{"exactMinor":"{line.exact_minor}",'
            f'"issuerMerchantId":{"null" if line.issuer is None else line.issuer},'
            f'"issuerMinor":{line.issuer_minor},"kind":"{line.kind}",'
            f'"originalBatchId":{"null" if line.original_batch_id is None else line.original_batch_id},'
            f'"originalEntryId":{"null" if line.original_entry_id is None else line.original_entry_id},'
            f'"points":{line.points},"policyId":{"null" if line.policy.id is None else line.policy.id},'
            f'{"" if line.program is None else _program_text(line.program)}'
            f'"redeemerMerchantId":{"null" if line.redeemer is None else line.redeemer},'
            f'"redeemerMinor":{line.redeemer_minor},'
            f'"reversalEntryId":{"null" if line.reversal_entry_id is None else line.reversal_entry_id}}}')


def _program_text(program: ProgramCost) -> str:
    return f'"program":"{program}",'


def check_period_end(period_end: Any, now: dt.datetime) -> dt.datetime:
    if not isinstance(period_end, dt.datetime) or period_end.tzinfo is None:
        raise InvalidPeriodEnd("periodEnd must be a date-time with a time zone", field="periodEnd")
    period_end = period_end.astimezone(dt.UTC)
    assert isinstance(period_end, dt.datetime)
    if period_end > now:
        raise InvalidPeriodEnd(f"periodEnd {_iso(period_end)} is in the future (now {_iso(now)}): "
                               "only past activity can be settled", code="PERIOD_END_IN_FUTURE", field="periodEnd")
    return period_end


async def _high_water_mark(db: Database, conn: AsyncConnection, after: int, period_end: dt.datetime,
                           table: type[Entry] | type[GiftEntry] = Entry) -> int:
    """The points entries' mark, or with ``table=GiftEntry`` the gift card entries' (the same way)."""
    query = select(func.max(table.id)).where(table.id > after, table.created_at < period_end)
    if db.is_sqlite:  # the run's BEGIN IMMEDIATE transaction already excludes writers
        return int((await conn.execute(query)).scalar_one_or_none() or after)
    async with db.engine.begin() as short:
        await short.execute(text(f"LOCK TABLE {table.__tablename__} IN SHARE MODE"))
        return int((await short.execute(query)).scalar_one_or_none() or after)


async def run_settlement(
    db: Database, settings: Settings, keys: NetworkKeys, *, period_end: Any, idempotency_key: str,
    now: dt.datetime | None = None, progress: Progress | None = None,
) -> RunResult:
    """Close every unsettled entry created before ``period_end`` into a new signed batch.

    Same key and same ``period_end`` again: the same batch, ``replayed``. Refusals
    (``DomainError``) write nothing.
    """
    key = check_idempotency_key(idempotency_key)
    now = now or utcnow()
    period_end = check_period_end(period_end, now)
    try:
        async with db.transaction() as conn:
            if not db.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SETTLEMENT_LOCK_KEY})
                await conn.execute(_LZ4_STATEMENTS)
            if (earlier := await _outcomes(conn, key, period_end).earlier()) is not None:
                return earlier
            latest = (await conn.execute(
                select(SettlementBatch).order_by(SettlementBatch.seq.desc()).limit(1))).first()
            if latest is not None and period_end <= latest.period_end:
                raise InvalidPeriodEnd(
                    f"periodEnd {_iso(period_end)} is not after the last batch's ({_iso(latest.period_end)}): "
                    "that activity is settled already", code="PERIOD_END_NOT_AFTER_LAST_BATCH", field="periodEnd")
            after = latest.through_entry_id if latest is not None else 0
            through = await _high_water_mark(db, conn, after, period_end)
            gift_after = (latest.through_gift_entry_id or 0) if latest is not None else 0
            gift_through = await _high_water_mark(db, conn, gift_after, period_end, table=GiftEntry)
            with _without_cyclic_gc():
                rows = await read_settlement_window(conn, settings, await policy_versions(conn, settings), after,
                                                    through, (gift_after, gift_through), progress)
                figures = price_window(rows)
                if progress is not None:
                    progress("priced", STEPS, STEPS)
                if latest is not None:
                    period_start = latest.period_end
                else:
                    first = (await conn.execute(select(Entry.created_at).where(Entry.id > after, Entry.id <= through)
                                                .order_by(Entry.id).limit(1))).scalar_one_or_none()
                    period_start = min(first, period_end) if first is not None else period_end
                batch_id = await _write_batch(conn, settings, keys, figures, key=key, latest=latest,
                                              period_start=period_start, period_end=period_end, now=now)
                await store_window(conn, batch_id, rows)
                del figures, rows
            batch = (await conn.execute(select(SettlementBatch).where(SettlementBatch.id == batch_id))).one()
            if noting_changes():  # each merchant in the batch gets a settlement.closed webhook
                merchants = (await conn.execute(select(SettlementPosition.merchant_id)
                                                .where(SettlementPosition.batch_id == batch_id))).scalars().all()
                for merchant_id in merchants:
                    note_change(functools.partial(Change, "settlement.closed", merchant_id, None, now, {
                        "batch_id": batch_id, "period_end": period_end.isoformat()}))
    except IntegrityError:
        # Only without the advisory lock (another process on SQLite racing past BEGIN
        # IMMEDIATE cannot happen; this is the constraint's last line).
        async with db.read() as conn:
            return await _outcomes(conn, key, period_end).explain(SettlementRaced(
                "another settlement run closed this activity at the same time; run again", field="periodEnd"))
    return RunResult(_batch_from_row(batch))


def _batch_from_row(row: Any) -> SettlementBatch:
    return SettlementBatch(**dict(row._mapping))


# A run's key is the network's (no scope); a retry must name the same ``periodEnd``.
BATCH_KEYS = KeyColumns(SettlementBatch, key="idempotency_key", fingerprint="period_end")


def _outcomes(conn: AsyncConnection, key: str, period_end: dt.datetime) -> Outcomes[RunResult]:
    """The batch an earlier run closed under this key (replayed), or IDEMPOTENCY_KEY_CONFLICT for another periodEnd."""
    async def earlier() -> RunResult | None:
        batch = await find_earlier(conn, BATCH_KEYS, (), key, period_end)
        return None if batch is None else RunResult(batch, replayed=True)

    return Outcomes(earlier=earlier)


@dataclass(frozen=True)
class _Signed:
    """A batch's statements: each merchant's text and salted leaf, the batch text, digest and signature."""

    merchant_texts: dict[int, str]
    leaves: dict[int, str]
    batch_text: str
    digest: str
    signature: str


def _sign(settings: Settings, keys: NetworkKeys, figures: SettlementFigures, *, batch_id: int, seq: int,
          previous_digest: str | None, period_start: dt.datetime, period_end: dt.datetime) -> _Signed:
    """Build and sign the batch's statements: CPU only, no database (it runs in a thread).

    Version 2 (:mod:`coalition.settlement.statements`): each merchant statement is a salted
    leaf, the batch statement holds only the leaves' Merkle root.
    """
    start, end = _iso(period_start), _iso(period_end)
    # Each line's canonical text is made once and spliced into its issuer's and its redeemer's statement.
    by_merchant: dict[int, list[str]] = collections.defaultdict(list)
    for line in figures.lines:
        line_json = line_text(line)
        issuer, redeemer = line.issuer, line.redeemer
        if issuer is not None:
            by_merchant[issuer].append(line_json)
        if redeemer is not None and redeemer != issuer:
            by_merchant[redeemer].append(line_json)
    merchant_texts: dict[int, str] = {}
    for merchant_id, f in sorted(figures.merchants.items()):
        merchant_texts[merchant_id] = statements.merchant_statement_text(
            batch_seq=seq, period_start=start, period_end=end, currency=settings.currency, merchant_id=merchant_id,
            figures=_figures_document(f), line_texts=by_merchant.pop(merchant_id, []))
    del by_merchant
    leaves = {m: statements.leaf_hash(keys.statement_nonce(batch_id, m), t) for m, t in merchant_texts.items()}
    tree = statements.MerkleTree.build(leaves.values())
    n = figures.netting
    totals = {
        "grossMinor": n.gross_minor, "netMinor": n.net_minor, "bilateralMinor": n.bilateral_minor,
        "bilateralTransfers": len(n.bilateral), "transfers": len(n.transfers),
        "networkIncomeMinor": n.network_income_minor, "residueMinor": str(figures.residue_minor),
        "nettingRatio": str(n.netting_ratio), "lines": len(figures.lines),
    }
    batch_text = statements.batch_statement(
        seq=seq, previous_digest=previous_digest, period_start=start, period_end=end,
        after_entry_id=figures.after_entry_id, through_entry_id=figures.through_entry_id, currency=settings.currency,
        policies=[p.as_dict() for p in figures.policies], totals=totals, merchant_root=tree.root,
        merchant_count=len(leaves))
    digest = statements.sha256_hex(batch_text)
    signature = base64.b64encode(keys.sign(digest.encode("ascii"))).decode()
    return _Signed(merchant_texts, leaves, batch_text, digest, signature)


async def _next_batch_id(conn: AsyncConnection) -> int:
    """The id the new batch will have, taken before its row is written (the lines go first)."""
    if conn.dialect.name == "postgresql":
        query = text("SELECT nextval(pg_get_serial_sequence('settlement_batches', 'id'))")
    else:  # the run's BEGIN IMMEDIATE excludes every other writer; batches are never deleted
        query = text("SELECT coalesce(max(id), 0) + 1 FROM settlement_batches")
    return int((await conn.execute(query)).scalar_one())


async def _write_batch(
    conn: AsyncConnection, settings: Settings, keys: NetworkKeys, figures: SettlementFigures, *, key: str,
    latest: Any, period_start: dt.datetime, period_end: dt.datetime, now: dt.datetime,
) -> int:
    """Write the batch, its lines and its positions; returns the batch id.

    The lines are streamed to the database while a thread builds and signs the statements,
    so the server's work on a dense batch's lines overlaps the statements' CPU work
    (docs/benchmarks-journal.md, "Settlement"); the batch row and the positions follow.
    """
    seq = latest.seq + 1 if latest is not None else 1
    batch_id = await _next_batch_id(conn)
    writing_lines = asyncio.ensure_future(_insert_rows(conn, SettlementLine.__table__, _LINE_COLUMNS, (
        (batch_id, line_no, line.kind, line.policy.id, line.issuer, line.redeemer, line.points,
         line.issuer_minor, line.redeemer_minor, str(line.exact_minor), line.reversal_entry_id,
         line.original_entry_id, line.original_batch_id, line.program)
        for line_no, line in enumerate(figures.lines, 1))))
    try:
        signed = await asyncio.to_thread(
            _sign, settings, keys, figures, batch_id=batch_id, seq=seq,
            previous_digest=latest.digest if latest is not None else None,
            period_start=period_start, period_end=period_end)
    finally:
        await writing_lines
    n = figures.netting
    await conn.execute(insert(SettlementBatch).values(
        id=batch_id, seq=seq, previous_batch_id=latest.id if latest is not None else None, idempotency_key=key,
        period_start=period_start, period_end=period_end, after_entry_id=figures.after_entry_id,
        through_entry_id=figures.through_entry_id, through_gift_entry_id=figures.through_gift_entry_id,
        funding_models=",".join(sorted({p.funding_model.value for p in figures.policies})),
        gross_minor=n.gross_minor, net_minor=n.net_minor, bilateral_minor=n.bilateral_minor,
        network_income_minor=n.network_income_minor, residue_minor=str(figures.residue_minor),
        statement=signed.batch_text, digest=signed.digest, signature=signed.signature, created_at=now,
    ))
    await _insert_rows(conn, SettlementPosition.__table__, _POSITION_COLUMNS, (
        (batch_id, m, f.points_issued, f.points_honored, f.points_reversed, f.points_expired, f.charges_minor,
         f.reimbursements_minor, f.breakage_minor, f.adjustments_minor, f.net_minor, signed.merchant_texts[m],
         signed.leaves[m])
        for m, f in sorted(figures.merchants.items())))
    return batch_id


_LINE_COLUMNS = ("batch_id", "line_no", "kind", "policy_id", "issuer_merchant_id", "redeemer_merchant_id", "points",
                 "issuer_minor", "redeemer_minor", "exact_minor", "reversal_entry_id", "original_entry_id",
                 "original_batch_id", "program")
_POSITION_COLUMNS = ("batch_id", "merchant_id", "points_issued", "points_honored", "points_reversed",
                     "points_expired", "charges_minor", "reimbursements_minor", "breakage_minor",
                     "adjustments_minor", "net_minor", "statement", "statement_sha256")


async def _insert_rows(conn: AsyncConnection, table: Any, columns: tuple[str, ...],
                       rows: Iterable[tuple[Any, ...]]) -> None:
    """COPY on PostgreSQL (a batch has one line per matrix cell: 10^5 and more), executemany on SQLite."""
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=rows, columns=list(columns))
        return
    rows = list(rows)
    if rows:
        await conn.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)


def _figures_document(f: Any) -> dict[str, int]:
    return {
        "pointsIssued": f.points_issued, "pointsHonored": f.points_honored, "pointsReversed": f.points_reversed,
        "pointsExpired": f.points_expired, "chargesMinor": f.charges_minor,
        "reimbursementsMinor": f.reimbursements_minor, "breakageMinor": f.breakage_minor,
        "adjustmentsMinor": f.adjustments_minor, "netMinor": f.net_minor,
    }


# ---------------------------------------------------------------- reading closed batches


async def list_batches(db: Database, *, after_id: int | None = None, limit: int = 20) -> list[SettlementBatch]:
    """Closed batches, newest first; ``after_id`` is the last id of the previous page."""
    query = select(SettlementBatch).order_by(SettlementBatch.id.desc()).limit(limit)
    if after_id is not None:
        query = query.where(SettlementBatch.id < after_id)
    async with db.read() as conn:
        return [_batch_from_row(r) for r in await conn.execute(query)]


async def get_batch(db: Database, batch_id: int) -> SettlementBatch:
    async with db.read() as conn:
        row = (await conn.execute(select(SettlementBatch).where(SettlementBatch.id == batch_id))).first()
    if row is None:
        raise BatchNotFound(f"there is no settlement batch {batch_id}", field="batchId")
    return _batch_from_row(row)


async def batch_lines(db: Database, batch_id: int, *, merchant_id: int | None = None) -> list[Row[Any]]:
    """The batch's lines; with ``merchant_id``, only the lines where it is issuer or redeemer.

    Read-only rows with the columns of :class:`SettlementLine` as attributes, not ORM objects:
    a batch has a line per matrix cell (2,550 at 50 merchants), and building an ORM object per
    line cost more than the query (about 50 ms of a batch report's 100 ms budget).
    """
    query = select(SettlementLine).where(SettlementLine.batch_id == batch_id).order_by(SettlementLine.line_no)
    if merchant_id is not None:
        query = query.where((SettlementLine.issuer_merchant_id == merchant_id)
                            | (SettlementLine.redeemer_merchant_id == merchant_id))
    async with db.read() as conn:
        return list(await conn.execute(query))


async def batch_positions(db: Database, batch_id: int, *, merchant_id: int | None = None) -> list[SettlementPosition]:
    """Every merchant's position (admin), or only ``merchant_id``'s."""
    query = select(SettlementPosition).where(SettlementPosition.batch_id == batch_id)
    if merchant_id is not None:
        query = query.where(SettlementPosition.merchant_id == merchant_id)
    async with db.read() as conn:
        rows = await conn.execute(query.order_by(SettlementPosition.merchant_id))
        return [SettlementPosition(**dict(r._mapping)) for r in rows]


async def export_statement(db: Database, keys: NetworkKeys, batch_id: int,
                           merchant_id: int | None = None) -> dict[str, Any]:
    """The signed JSON export of one merchant's statement, or of every merchant's (admin).

    A version-2 batch: each statement with its nonce and inclusion proof (only the merchant's
    own in its export); a version-1 batch (closed before): the version-1 export as it always was.
    """
    batch = await get_batch(db, batch_id)
    positions = await batch_positions(db, batch_id, merchant_id=merchant_id)
    if merchant_id is not None and not positions:
        raise BatchNotFound(f"merchant {merchant_id} has no statement in batch {batch_id}", field="merchantId")
    single = merchant_id is not None
    if statements.statement_version(batch.statement) == 1:
        return statements.export_document_v1(
            batch_statement=batch.statement, digest=batch.digest, signature=batch.signature,
            public_key_b64=keys.public_key_b64, merchant_statements=[p.statement for p in positions], single=single)
    commitments = await statement_commitments(db, keys, batch_id, positions)
    return statements.export_document(
        batch_statement=batch.statement, digest=batch.digest, signature=batch.signature,
        public_key_b64=keys.public_key_b64, commitments=commitments, single=single)


async def statement_commitments(db: Database, keys: NetworkKeys, batch_id: int,
                                positions: list[SettlementPosition]) -> list[statements.Commitment]:
    """Each position's statement with its nonce and inclusion proof, in a version-2 batch.

    Raises StatementKeyMismatch if the server's master secret is not the one the batch was
    salted under (the nonces would not match the leaves).
    """
    tree = statements.MerkleTree.build(await batch_leaves(db, batch_id))
    commitments = []
    for p in positions:
        nonce = keys.statement_nonce(batch_id, p.merchant_id)
        if statements.leaf_hash(nonce, p.statement) != p.statement_sha256:
            # Only a changed master secret does this: the export would not verify, so say why instead.
            raise StatementKeyMismatch(f"merchant {p.merchant_id}'s statement in batch {batch_id} was salted with "
                                       "another master secret than this server's; export it with that secret")
        commitments.append(statements.Commitment(p.statement, nonce.hex(), tree.proof(p.statement_sha256)))
    return commitments


async def batch_leaves(db: Database, batch_id: int) -> list[str]:
    """Every salted leaf of a version-2 batch (hashes only: what an inclusion proof is built from)."""
    async with db.read() as conn:
        return list((await conn.execute(select(SettlementPosition.statement_sha256)
                                        .where(SettlementPosition.batch_id == batch_id))).scalars())


def merchant_root_of(batch: SettlementBatch) -> str | None:
    """The Merkle root of a version-2 batch's salted statements (None: version 1, or no statement)."""
    value = json.loads(batch.statement).get("merchantRoot")
    return None if value is None else str(value)


def statement_version_of(batch: SettlementBatch) -> int:
    return statements.statement_version(batch.statement)


@dataclass(frozen=True)
class MatrixCell:
    """Issuer x redeemer: points honored and money, summed over policy versions."""

    issuer: int | None
    redeemer: int
    points: int
    amount_minor: int  # reimbursed to the redeemer
    charged_minor: int  # charged to the issuer (REDEMPTION)
    kind: str = "POINTS"  # or GIFT_CARD: money of the issuer's gift cards spent at the redeemer (points: minor units)


@dataclass(frozen=True)
class _StoredLeg:
    issuer: int | None
    redeemer: int | None
    issuer_minor: int
    redeemer_minor: int


async def batch_matrix(db: Database, batch_id: int, *, merchant_id: int | None = None) -> list[MatrixCell]:
    cells: dict[tuple[str, int | None, int], list[int]] = {}
    kinds = {LineKind.HONORED: "POINTS", LineKind.GIFT_CARD: "GIFT_CARD"}
    for line in await batch_lines(db, batch_id, merchant_id=merchant_id):
        kind = kinds.get(line.kind)
        if kind is not None and line.redeemer_merchant_id is not None:
            cell = cells.setdefault((kind, line.issuer_merchant_id, line.redeemer_merchant_id), [0, 0, 0])
            cell[0] += line.points
            cell[1] += line.redeemer_minor
            cell[2] -= line.issuer_minor
    ordered = sorted(cells.items(), key=lambda kv: (kv[0][0] != "POINTS", kv[0][1] or 0, kv[0][2]))
    return [MatrixCell(i, r, v[0], v[1], v[2], kind=k) for (k, i, r), v in ordered]


async def batch_netting(db: Database, batch_id: int) -> netting.Netting:
    """The batch's netting recomputed from its stored lines (transfers and the bilateral view)."""
    lines = await batch_lines(db, batch_id)
    return netting.net(_StoredLeg(line.issuer_merchant_id, line.redeemer_merchant_id, line.issuer_minor,
                                  line.redeemer_minor) for line in lines)


async def batch_adjustments(db: Database, batch_id: int, *, merchant_id: int | None = None) -> list[Row[Any]]:
    return [line for line in await batch_lines(db, batch_id, merchant_id=merchant_id)
            if line.kind == LineKind.ADJUSTMENT]


async def batch_transfers(db: Database, batch_id: int, *, merchant_id: int | None = None,
                          bilateral: bool = False) -> list[netting.Transfer]:
    """The multilateral transfers (or the bilateral view); a merchant sees only its own."""
    result = await batch_netting(db, batch_id)
    transfers = result.bilateral if bilateral else result.transfers
    if merchant_id is None:
        return transfers
    return [t for t in transfers if merchant_id in (t.payer, t.payee)]


def netting_ratio_of(batch: SettlementBatch) -> str:
    return str(json.loads(batch.statement)["totals"]["nettingRatio"])


def previous_digest_of(batch: SettlementBatch) -> str | None:
    value = json.loads(batch.statement)["previousDigest"]
    return None if value is None else str(value)


def export_text(document: dict[str, Any]) -> str:
    """The export file's text (the statements inside stay byte-exact strings)."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
