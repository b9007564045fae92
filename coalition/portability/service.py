"""Importing members, opening balances and dated history from another loyalty program's export.

``import_members`` reads the file (``coalition.portability.reader``) in passes, never holding it:

1. **Validate** the whole file: every row's fields, then the whole-file checks (duplicate
   external ids and contacts, earn rows without a member). Errors by line number.
2. If the file is valid and this merchant already imported it (its first member's row key
   exists), answer ``ALREADY_IMPORTED``: nothing is written.
3. **Check against the database**: the merchant is active; no contact is already a member's
   (the blind index, in batches).
4. Unless it is a dry run, **load** it in one transaction (``coalition.portability.load``):
   members, then earn rows. Any failure rolls everything back: nothing is half-written.

Idempotency: each row's key is derived from the merchant, the file's SHA-256 and the row's
external id (an earn row's from its line), and stored as the member's enrollment key and the
entries' idempotency keys, which the database keeps unique per merchant. Re-running the same
file finds the keys and changes nothing; two runs at once collide on them and the loser
answers ``ALREADY_IMPORTED`` once the winner committed.

Choices: imported points expire ``points_expiry_days`` after the import, not after their
original date (a migration never expires a customer's points at once); the original date
is the entries' ``effective_at``. The opening balance is an EARN entry of the importing
merchant (it issues those points to the network, and funds them as any issue). Imported
members get no credentials: an admin issues a claim code (``issueMemberClaimCode``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.members.models import Member
from coalition.partners.models import Merchant, MerchantStatus
from coalition.portability.load import ImportCollision, already_imported, load_file
from coalition.portability.reader import MEMBER, ImportReader, Limits, Record, RowError, Scan

Progress = Callable[[str, int, int], None]
CHECK_BATCH = 5000  # contacts checked a query (each kind one array parameter)


@dataclass
class ImportResult:
    """``status``: INVALID (see ``errors``), DRY_RUN (valid, nothing written), IMPORTED, ALREADY_IMPORTED."""

    status: str
    scan: Scan
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    members_created: int = 0
    entries_created: int = 0
    postings_created: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "INVALID"


def file_key(merchant_id: int, sha256: str) -> str:
    return hashlib.sha256(f"import:{merchant_id}:{sha256}".encode()).hexdigest()[:32]


def member_key(fkey: str, external_id: str) -> str:
    """The row's idempotency key: merchant + file (in ``fkey``) + external id."""
    return f"imp:{fkey}:{hashlib.sha256(external_id.encode()).hexdigest()[:32]}"


def earn_key(fkey: str, line: int) -> str:
    return f"imp:{fkey}:L{line}"


def write_error_file(errors: list[RowError], path: Path) -> None:
    """The error file: CSV ``line,column,code,message``."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["line", "column", "code", "message"])
        for e in errors:
            writer.writerow([e.line, e.column, e.code, e.message])


class _Spool:
    """The validation pass's valid records, pickled a chunk at a time to a temporary file per kind.

    The load reads them back instead of parsing the CSV again (parsing is most of a row's
    Python time), members before earn rows whatever their order in the file; memory holds one
    chunk. The files are deleted with the directory whatever happens.
    """

    CHUNK = 5000

    def __init__(self, directory: Path) -> None:
        self.files = {kind: (directory / f"{kind}.pickle").open("w+b") for kind in (MEMBER, "earn")}
        self.buffers: dict[str, list[Record]] = {MEMBER: [], "earn": []}

    def add(self, r: Record) -> None:
        kind = MEMBER if r.type == MEMBER else "earn"
        buffer = self.buffers[kind]
        buffer.append(r)
        if len(buffer) >= self.CHUNK:
            self._dump(kind)

    def _dump(self, kind: str) -> None:
        if self.buffers[kind]:
            # plain tuples: a named tuple pickles through __getnewargs__, three times slower
            pickle.dump(list(map(tuple, self.buffers[kind])), self.files[kind], protocol=pickle.HIGHEST_PROTOCOL)
            self.buffers[kind] = []

    def read(self, kind: str) -> Iterator[Record]:
        self._dump(kind)
        f = self.files[kind]
        f.seek(0)
        while True:
            try:
                chunk = pickle.load(f)
            except EOFError:
                return
            yield from map(Record._make, chunk)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


async def import_members(
    db: Database, keys: NetworkKeys, *, merchant_id: int, path: Path, limits: Limits, expiry_days: int,
    dry_run: bool = False, now: dt.datetime | None = None, progress: Progress | None = None,
) -> ImportResult:
    """Validate ``path`` whole, then (unless ``dry_run``) load it once; see the module docstring."""
    import time

    started = time.perf_counter()
    now = now or utcnow()
    report = progress or (lambda stage, done, total: None)
    size = path.stat().st_size
    if size > limits.max_bytes:
        scan = Scan(bytes_read=0, fatal=True, error_count=1)
        error = RowError(0, "", "FILE_TOO_LARGE", f"the file has {size:,} bytes; at most {limits.max_bytes:,}: "
                         "split it")
        return ImportResult("INVALID", scan, [error], 1)

    # 1. validate, and check contacts against the database as we go (in batches)
    contacts = _ContactCheck(db, keys, limits.max_errors)
    with tempfile.TemporaryDirectory(prefix="coalition-import-") as directory:
        spool = _Spool(Path(directory))
        try:
            return await _validate_and_load(db, keys, merchant_id=merchant_id, path=path, limits=limits,
                                            expiry_days=expiry_days, dry_run=dry_run, now=now, report=report,
                                            size=size, started=started, contacts=contacts, spool=spool)
        finally:
            spool.close()


async def _validate_and_load(
    db: Database, keys: NetworkKeys, *, merchant_id: int, path: Path, limits: Limits, expiry_days: int,
    dry_run: bool, now: dt.datetime, report: Progress, size: int, started: float, contacts: _ContactCheck,
    spool: _Spool,
) -> ImportResult:
    import time

    with path.open("rb") as stream:
        reader = ImportReader(stream, limits, now=now)
        for n, record in enumerate(reader.records(), 1):
            if record.type == MEMBER and (record.email or record.phone):
                record = await contacts.add(record)
            spool.add(record)
            if n % 10_000 == 0:
                report("validating", reader.scan.bytes_read, size)
        await contacts.flush()
        report("validating", size, size)
    scan = reader.scan
    errors = list(scan.errors)
    fkey = file_key(merchant_id, scan.sha256)

    # 2. already imported? (then every contact above was found: this file's own members)
    if not scan.error_count and scan.first_external_id is not None and await already_imported(
            db, merchant_id, member_key(fkey, scan.first_external_id)):
        return ImportResult("ALREADY_IMPORTED", scan, elapsed_s=time.perf_counter() - started)

    # 3. the merchant, and the contacts some member already has
    status = await _merchant_status(db, merchant_id)
    if status is None:
        errors.insert(0, RowError(0, "", "MERCHANT_NOT_FOUND", f"no merchant {merchant_id}"))
    elif status != MerchantStatus.ACTIVE:
        errors.insert(0, RowError(0, "", "MERCHANT_SUSPENDED", f"merchant {merchant_id} is suspended: it cannot "
                                  "enroll members"))
    error_count = scan.error_count + (len(errors) - len(scan.errors)) + contacts.count
    if not scan.fatal and contacts.taken:
        errors = sorted(errors + contacts.taken, key=lambda e: e.line)[:limits.max_errors]
    if error_count or scan.fatal:
        return ImportResult("INVALID", scan, errors, error_count, elapsed_s=time.perf_counter() - started)
    if dry_run:
        return ImportResult("DRY_RUN", scan, elapsed_s=time.perf_counter() - started)

    # 4. load
    try:
        loaded = await load_file(
            db, keys, merchant_id=merchant_id, scan=scan, now=now, expiry=dt.timedelta(days=expiry_days),
            members=spool.read(MEMBER), earns=spool.read("earn"),
            member_key=lambda external_id: member_key(fkey, external_id), earn_key=lambda line: earn_key(fkey, line),
            progress=report, index=reader.members())
    except ImportCollision as collision:
        return ImportResult("INVALID", scan, [RowError(0, "", collision.code, collision.message)], 1,
                            elapsed_s=time.perf_counter() - started)
    if loaded is None:  # a concurrent run of the same file won
        return ImportResult("ALREADY_IMPORTED", scan, elapsed_s=time.perf_counter() - started)
    return ImportResult("IMPORTED", scan, members_created=loaded.members, entries_created=loaded.entries,
                        postings_created=loaded.postings, elapsed_s=time.perf_counter() - started)


async def _merchant_status(db: Database, merchant_id: int) -> MerchantStatus | None:
    async with db.read() as conn:
        value = (await conn.execute(select(Merchant.status).where(Merchant.id == merchant_id))).scalar()
    return None if value is None else MerchantStatus(value)


class _ContactCheck:
    """CONTACT_ALREADY_ENROLLED for each member row whose e-mail or phone is some member's (blind index)."""

    def __init__(self, db: Database, keys: NetworkKeys, max_errors: int) -> None:
        self.db, self.keys, self.max_errors = db, keys, max_errors
        self.batch: list[tuple[int, str, str]] = []  # (line, column, blind index)
        self.taken: list[RowError] = []
        self.count = 0

    async def add(self, record: Record) -> Record:
        """Queue the record's contacts for the check; the record with its blind indexes (the load's too)."""
        email_index = phone_index = None
        if record.email:
            email_index = self.keys.blind_index("email", record.email)
            self.batch.append((record.line, "email", email_index))
        if record.phone:
            phone_index = self.keys.blind_index("phone", record.phone)
            self.batch.append((record.line, "phone", phone_index))
        if len(self.batch) >= CHECK_BATCH:
            await self.flush()
        return record._replace(email_index=email_index, phone_index=phone_index)

    async def flush(self) -> None:
        if not self.batch:
            return
        found: set[str] = set()
        async with self.db.read() as conn:
            for column in ("email", "phone"):
                wanted = [index for _, c, index in self.batch if c == column]
                if not wanted:
                    continue
                if conn.dialect.name == "postgresql":  # one array parameter rather than 1,000
                    query: Any = text(f"SELECT {column}_index FROM members WHERE {column}_index = "
                                      "ANY(CAST(:wanted AS varchar[]))").bindparams(wanted=wanted)
                else:
                    index_column = Member.email_index if column == "email" else Member.phone_index
                    query = select(index_column).where(index_column.in_(wanted))
                found |= {f"{column}:{row[0]}" for row in await conn.execute(query)}
        for line, column, index in self.batch:
            if f"{column}:{index}" in found:
                self.count += 1
                if len(self.taken) < self.max_errors:
                    self.taken.append(RowError(line, column, "CONTACT_ALREADY_ENROLLED",
                                               f"a member with this {column} is already enrolled"))
        self.batch = []


def limits_from(settings: Settings, *, max_bytes: int | None = None) -> Limits:
    return Limits(max_bytes=max_bytes or settings.import_max_bytes, max_line_bytes=settings.import_max_line_bytes,
                  max_rows=settings.import_max_rows)
