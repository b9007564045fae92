"""Member import throughput: ``coalition import members`` against 100-row INSERT transactions.

    COALITION_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/SCRATCH \\
        .venv/bin/python bench/import_members.py [--members 20000] [--history 1] [--rounds 2]

Use a scratch database: its tables are dropped and migrated again. Writes a CSV of
``--members`` members (e-mail, phone, opening balance) and ``--history`` dated earn rows
each, then, in each round and in the same process:

- **import**: ``import_members`` as the CLI runs it — the whole validation pass, the
  contact check against the database, then the load (COPY), in one transaction;
- **baseline**: the same rows (same Python work: loyalty ids, encryption, blind index,
  the same ids and columns) sent as multi-row ``INSERT … VALUES`` statements in one
  transaction per 100 CSV rows.

The tables are emptied and ``VACUUM ANALYZE``d before each run. Prints postings/s for both
and the ratio; the targets are ≥ 20,000 postings/s and ≥ 1.3 x the baseline. Also prints
the peak RSS growth of the import (memory flat in the file size: try two sizes), and the
CPU seconds each side used — this process's, and this database's PostgreSQL backends' when
the server runs on this machine — which, unlike the wall clock, do not depend on what else
the (shared) machine runs.

A posting is one row of ``postings``: two a ledger entry (ISSUED by the merchant, MEMBER);
an entry per member with an opening balance and per earn row.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.migrate import migrate
from coalition.models import Base
from coalition.partners.service import onboard_merchant
from coalition.portability import load
from coalition.portability.reader import MEMBER, ImportReader
from coalition.portability.service import earn_key, file_key, import_members, limits_from, member_key

NOW = dt.datetime.now(dt.UTC)


def postgres_cpu(database: str) -> float | None:
    """CPU seconds used so far by this machine's PostgreSQL backends for ``database`` (None: not local)."""
    total, found = 0, False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if command.startswith(b"postgres:") and f" {database} ".encode() in command:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
                found = True
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK") if found else None


def cpu_note(python_s: float, pg_before: float | None, database: str) -> str:
    """Where the CPU went: the machine is shared, so the wall clock depends on everyone's load."""
    pg_after = postgres_cpu(database)
    pg = f"{pg_after - pg_before:.2f} s" if pg_before is not None and pg_after is not None else "n/a"
    return f"CPU: Python {python_s:.2f} s, PostgreSQL {pg}; load average {os.getloadavg()[0]:.1f}"


def write_csv(path: Path, members: int, history: int) -> None:
    with path.open("w") as f:
        f.write("type,external_id,email,phone,balance,points,amount_minor,date\n")
        for i in range(members):
            f.write(f"member,c{i},customer{i}@example.com,+4477{i:09d},{100 + i % 900},,,2025-01-01\n")
            for h in range(history):
                f.write(f"earn,c{i},,,,{10 + h},{1000 + h},2025-0{1 + h % 9}-15T10:00:00Z\n")


class InsertWriter(load._Writer):
    """The baseline: multi-row INSERT … VALUES instead of COPY."""

    async def write(self, table: Any, columns: Any, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await self.conn.execute(insert(table).values([dict(zip(columns, row, strict=True)) for row in rows]))


async def baseline(db: Database, keys: NetworkKeys, merchant_id: int, path: Path, settings: Any) -> int:
    """Insert the file's rows in transactions of 100 CSV rows; return the postings written.

    The same work as the import but the writes: one validation pass (which also sums each
    member's history, so members are written once with their final balance), the contact
    check's blind indexes, then the rows.
    """
    limits = limits_from(settings)
    with path.open("rb") as stream:
        reader = ImportReader(stream, limits, now=NOW)
        for _ in reader.records():
            pass
    index = reader.members()
    fkey = file_key(merchant_id, reader.scan.sha256)
    counts = {"members": 0, "entries": 0}
    plan = load._Plan(None, keys, merchant_id, NOW, dt.timedelta(days=365),  # type: ignore[arg-type]
                      lambda e: member_key(fkey, e), lambda n: earn_key(fkey, n), index)

    def records(kind: str) -> Any:
        with path.open("rb") as stream:
            for record in ImportReader(stream, limits, now=NOW, check_whole_file=False).records():
                if record.type == MEMBER == kind:
                    yield record._replace(
                        email_index=keys.blind_index("email", record.email) if record.email else None,
                        phone_index=keys.blind_index("phone", record.phone) if record.phone else None)
                elif record.type != MEMBER and kind != MEMBER:
                    yield record

    for kind in (MEMBER, "earn"):
        it = records(kind)
        while chunk := list(islice(it, 100)):
            async with db.transaction() as conn:
                await load.skip_foreign_key_triggers(conn, merchant_id)
                writer = InsertWriter(conn)
                if kind == MEMBER:
                    await load._members(writer, chunk, counts, plan)
                else:
                    await load._earns(writer, chunk, counts, plan)
    return 2 * counts["entries"]


async def empty(db: Database) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "merchants"
                       and t.name != "api_keys")
    async with db.transaction() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))


async def main(members: int, history: int, rounds: int) -> None:
    settings = load_settings()
    assert not settings.is_sqlite, "run this on PostgreSQL (COALITION_DATABASE_URL)"
    database = settings.database_url.rsplit("/", 1)[-1].split("?")[0]
    db = Database(settings.database_url, pool_size=2)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await db.dispose()
    await migrate(settings)
    keys = NetworkKeys.from_settings(settings)
    db = Database(settings.database_url, pool_size=2)
    shop = (await onboard_merchant(db, name="Importer", category="bench", earn_rate_points_per_unit=1)).merchant
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "members.csv"
        write_csv(path, members, history)
        size = path.stat().st_size
        print(f"file: {members:,} members + {members * history:,} history rows, {size / 1e6:.1f} MB")
        best_import = best_base = 0.0
        for n in range(rounds):
            await empty(db)
            started, cpu, pg = time.perf_counter(), time.process_time(), postgres_cpu(database)
            postings = await baseline(db, keys, shop.id, path, settings)
            base_rate = postings / (time.perf_counter() - started)
            base_cpu = cpu_note(time.process_time() - cpu, pg, database)
            await empty(db)
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started, cpu, pg = time.perf_counter(), time.process_time(), postgres_cpu(database)
            result = await import_members(db, keys, merchant_id=shop.id, path=path, limits=limits_from(settings),
                                          expiry_days=365, now=NOW)
            elapsed = time.perf_counter() - started
            import_cpu = cpu_note(time.process_time() - cpu, pg, database)
            assert result.status == "IMPORTED", result.errors[:5]
            rate = result.postings_created / elapsed
            rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
            print(f"round {n + 1}: import {result.postings_created:,} postings in {elapsed:.2f} s = {rate:,.0f}/s "
                  f"(validation, contact check and load); baseline 100-row INSERT transactions "
                  f"{postings:,} postings = {base_rate:,.0f}/s; ratio {rate / base_rate:.2f} x; "
                  f"peak RSS growth {rss_growth / 1024:.1f} MB\n  import {import_cpu}\n  baseline {base_cpu}")
            best_import, best_base = max(best_import, rate), max(best_base, base_rate)
        async with db.read() as conn:
            from coalition.ledger.invariants import ledger_violations

            problems = await ledger_violations(conn)
        print(f"best: import {best_import:,.0f} postings/s, baseline {best_base:,.0f}/s, "
              f"ratio {best_import / best_base:.2f} x; invariants: {'OK' if not problems else problems[:3]}")
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--history", type=int, default=1, help="dated earn rows per member")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.members, args.history, args.rounds))
