"""WAL written per ledger earn and redeem on PostgreSQL, against a pgbench TPC-B transaction.

    .venv/bin/python bench/wal_per_txn.py [--transactions 2000] [--concurrency 32] [--by-record]

PostgreSQL's CPU per request and its fsync load grow with the WAL a transaction writes:
one record per heap row inserted or updated and one per index entry added, plus the
commit. ``pg_stat_wal`` counts records, full-page images and bytes for the whole server,
so each measurement starts with a CHECKPOINT (every measurement then pays the full-page
images of its first touch of each page alike) and runs with nothing else of ours going on:

- earn, then redeem: ``--transactions`` calls of ``Ledger.earn`` / ``Ledger.redeem`` from
  ``--concurrency`` asyncio tasks on random members of ``coalition_bench`` (reused when
  seeded, else built as ``http_ledger.py`` builds it), on a pool closed before the counts
  are read (a backend reports its WAL counts when idle for seconds, or when it exits);
- pgbench: ``pgbench -t`` TPC-B transactions on a fresh ``coalition_pgbench`` (scale 10) with
  the same number of clients, the same total.

Prints WAL records, full-page images and bytes per transaction; with ``--by-record``, also
which kinds of record they are (index inserts, heap inserts, row locks taken by foreign-key
checks, multixacts, commits), read with ``pg_walinspect`` between the run's two LSNs. Changes on the machine
(other databases written during a run) show up as extra WAL; run it on a quiet server.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from benchlib.env import BENCH_DB, PG_HOST, PG_USER, PGBENCH_DB, bench_settings, log, pg_url
from benchlib.pgbench import init_pgbench_database
from benchlib.seeding import ensure_pg_bench
from benchlib.wrk import run_tag
from inprocess_ledger import ledger_ops

from coalition.config import Settings
from coalition.db import Database
from coalition.ledger.service import Ledger


@dataclass
class Wal:
    records: int
    fpi: int
    bytes: int

    def __sub__(self, other: Wal) -> Wal:
        return Wal(self.records - other.records, self.fpi - other.fpi, self.bytes - other.bytes)


async def wal_now(conn: Any) -> Wal:
    row = await conn.fetchrow("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")
    return Wal(int(row[0]), int(row[1]), int(row[2]))


@dataclass
class Measured:
    wal: Wal
    transactions: int
    by_record: list[tuple[str, int, int]]  # (resource manager/record type, records, bytes with full pages)


async def measure(conn: Any, work: Callable[[], Awaitable[int]], *, by_record: bool) -> Measured:
    """WAL written by ``work`` (which returns how many transactions it committed), after a CHECKPOINT."""
    await conn.execute("CHECKPOINT")
    before, start = await wal_now(conn), await conn.fetchval("SELECT pg_current_wal_lsn()")
    done = await work()
    await asyncio.sleep(1)  # the closed connections' backends exit and report their counts
    wal, end = await wal_now(conn) - before, await conn.fetchval("SELECT pg_current_wal_lsn()")
    records = []
    if by_record:
        records = [(r[0], int(r[1]), int(r[2])) for r in await conn.fetch(
            'SELECT "resource_manager/record_type", count, combined_size FROM pg_get_wal_stats($1, $2, true) '
            "WHERE count > 0 ORDER BY count DESC", start, end)]
    return Measured(wal, done, records)


async def ledger_run(settings: Settings, merchant_id: int, loyalty_ids: list[str], op: str, *, total: int,
                     concurrency: int) -> int:
    """``total`` calls of one operation on a pool of its own, closed at the end: a PostgreSQL backend
    adds its WAL counts to ``pg_stat_wal`` when it goes idle for a while or exits, so the
    connections must be gone before the counts are read."""
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        return await ledger_calls(Ledger(db, settings), merchant_id, loyalty_ids, op, total=total,
                                  concurrency=concurrency)
    finally:
        await db.dispose()


async def ledger_calls(ledger: Ledger, merchant_id: int, loyalty_ids: list[str], op: str, *, total: int,
                       concurrency: int) -> int:
    call = ledger_ops(ledger, merchant_id)[op]  # as bench/inprocess_ledger.py calls it
    tag = run_tag(f"wal-{op}")
    rnd = random.Random(17)
    todo = iter(range(total))

    async def worker() -> None:
        for i in todo:
            await call(rnd.choice(loyalty_ids), f"{tag}-{i}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total


def pgbench_calls(*, total: int, clients: int) -> int:
    base = ["pgbench", "-h", PG_HOST, "-U", PG_USER]
    per_client = max(1, total // clients)
    subprocess.run([*base, "-c", str(clients), "-j", "2", "-t", str(per_client), "-M", "prepared", PGBENCH_DB],
                   check=True, capture_output=True)
    return per_client * clients


async def run(args: argparse.Namespace) -> None:
    seed = await ensure_pg_bench(members=args.members, ids_file=Path("/tmp/coalition_bench_ids_wal.txt"),
                                 fresh=False)
    init_pgbench_database()
    settings = bench_settings(pg_url(BENCH_DB))
    conn = await asyncpg.connect(host=PG_HOST, user=PG_USER, database="postgres")
    if args.by_record:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    rows: list[tuple[str, Measured]] = []
    try:
        for op in ("earn", "redeem"):
            log(f"{op}: {args.transactions} calls from {args.concurrency} tasks")
            measured = await measure(conn, partial(ledger_run, settings, seed.merchant_id, seed.loyalty_ids, op,
                                                   total=args.transactions, concurrency=args.concurrency),
                                     by_record=args.by_record)
            rows.append((f"ledger {op}", measured))

        async def pgbench() -> int:
            return await asyncio.to_thread(pgbench_calls, total=args.transactions, clients=args.concurrency)

        log(f"pgbench: {args.transactions} TPC-B transactions from {args.concurrency} clients")
        rows.append(("pgbench TPC-B", await measure(conn, pgbench, by_record=args.by_record)))
    finally:
        await conn.close()

    print()
    print(f"WAL per transaction (pg_stat_wal after a CHECKPOINT; {args.concurrency} concurrent clients)")
    header = f"| {'workload':14} | {'transactions':>12} | {'records':>7} | {'full pages':>10} | {'bytes':>7} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for name, m in rows:
        n = m.transactions
        print(f"| {name:14} | {n:>12} | {m.wal.records / n:>7.1f} | {m.wal.fpi / n:>10.2f} | {m.wal.bytes / n:>7.0f} |")
    for name, m in rows:
        if m.by_record:
            print(f"\n{name}, per transaction, by record type (pg_walinspect; records >= 0.05 per transaction):")
            for kind, count, size in m.by_record:
                if count / m.transactions >= 0.05:
                    print(f"  {kind:28} {count / m.transactions:6.2f} records  {size / m.transactions:8.0f} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--by-record", action="store_true",
                        help="also break the WAL down by record type (creates the pg_walinspect extension in the "
                             "postgres database; PostgreSQL 15+)")
    args = parser.parse_args(argv)
    if not 100 <= args.transactions <= 100_000:
        parser.error("--transactions must be 100..100000")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
