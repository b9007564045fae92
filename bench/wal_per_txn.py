"""WAL written per ledger earn and redeem on PostgreSQL, against a pgbench TPC-B transaction.

    .venv/bin/python bench/wal_per_txn.py [--transactions 2000] [--concurrency 32]

PostgreSQL's CPU per request and its fsync load grow with the WAL a transaction writes:
one record per heap row inserted or updated and one per index entry added, plus the
commit. ``pg_stat_wal`` counts records, full-page images and bytes for the whole server,
so each measurement starts with a CHECKPOINT (every measurement then pays the full-page
images of its first touch of each page alike) and runs with nothing else of ours going on:

- earn, then redeem: ``--transactions`` calls of ``Ledger.earn`` / ``Ledger.redeem`` from
  ``--concurrency`` asyncio tasks on random members of ``coalition_bench`` (reused when
  seeded, else built as ``http_ledger.py`` builds it), on a pool closed before the counts
  are read (a backend reports its WAL counts when idle for seconds, or when it exits);
- pgbench: ``pgbench -t`` TPC-B transactions on ``coalition_pgbench`` (scale 10) with the
  same number of clients, the same total.

Prints WAL records, full-page images and bytes per transaction. Changes on the machine
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
from benchlib import BENCH_DB, PG_HOST, PG_USER, PGBENCH_DB, bench_settings, ensure_pg_bench, log, pg_url, run_tag

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


async def measure(conn: Any, work: Callable[[], Awaitable[int]]) -> tuple[Wal, int]:
    """WAL written by ``work`` (which returns how many transactions it committed), after a CHECKPOINT."""
    await conn.execute("CHECKPOINT")
    before = await wal_now(conn)
    done = await work()
    await asyncio.sleep(1)  # the closed connections' backends exit and report their counts
    return await wal_now(conn) - before, done


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
    tag = run_tag(f"wal-{op}")
    rnd = random.Random(17)
    todo = iter(range(total))

    async def worker() -> None:
        for i in todo:
            lid = rnd.choice(loyalty_ids)
            if op == "earn":
                await ledger.earn(merchant_id=merchant_id, loyalty_id=lid,
                                  purchase_amount_minor=rnd.randint(100, 10_000), idempotency_key=f"{tag}-{i}")
            else:
                await ledger.redeem(merchant_id=merchant_id, loyalty_id=lid, points=rnd.randint(1, 20),
                                    idempotency_key=f"{tag}-{i}")

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
    exists = subprocess.run(["psql", "-h", PG_HOST, "-U", PG_USER, "-Atc",
                             f"SELECT 1 FROM pg_database WHERE datname = '{PGBENCH_DB}'", "postgres"],
                            check=True, capture_output=True, text=True).stdout.strip()
    if not exists:
        subprocess.run(["createdb", "-h", PG_HOST, "-U", PG_USER, PGBENCH_DB], check=True)
        subprocess.run(["pgbench", "-h", PG_HOST, "-U", PG_USER, "-i", "-q", "-s", "10", PGBENCH_DB],
                       check=True, capture_output=True)
    settings = bench_settings(pg_url(BENCH_DB))
    conn = await asyncpg.connect(host=PG_HOST, user=PG_USER, database="postgres")
    rows: list[tuple[str, Wal, int]] = []
    try:
        for op in ("earn", "redeem"):
            log(f"{op}: {args.transactions} calls from {args.concurrency} tasks")
            wal, done = await measure(conn, partial(ledger_run, settings, seed.merchant_id, seed.loyalty_ids, op,
                                                    total=args.transactions, concurrency=args.concurrency))
            rows.append((f"ledger {op}", wal, done))

        async def pgbench() -> int:
            return await asyncio.to_thread(pgbench_calls, total=args.transactions, clients=args.concurrency)

        log(f"pgbench: {args.transactions} TPC-B transactions from {args.concurrency} clients")
        wal, done = await measure(conn, pgbench)
        rows.append(("pgbench TPC-B", wal, done))
    finally:
        await conn.close()

    print()
    print(f"WAL per transaction (pg_stat_wal after a CHECKPOINT; {args.concurrency} concurrent clients)")
    header = f"| {'workload':14} | {'transactions':>12} | {'records':>7} | {'full pages':>10} | {'bytes':>7} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for name, wal, done in rows:
        print(f"| {name:14} | {done:>12} | {wal.records / done:>7.1f} | {wal.fpi / done:>10.2f} | "
              f"{wal.bytes / done:>7.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--members", type=int, default=10_000)
    args = parser.parse_args(argv)
    if not 100 <= args.transactions <= 100_000:
        parser.error("--transactions must be 100..100000")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
