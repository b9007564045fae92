"""What one earn or redemption costs on PostgreSQL by how many go in one fast statement.

    .venv/bin/python bench/batch_size.py [--sizes 1 2 4 8 16 32] [--seconds 3]

Reuses the seeded ``coalition_bench`` (or builds it) and runs the ledger's one-statement earn
and redemption (``coalition.ledger.fastpath``) one batch at a time from one task, each batch
of distinct random members, for ``--seconds`` per size: the time per batch and per operation
(wall clock, commit and WAL flush included), and the CPU per operation of this process and of
PostgreSQL. No concurrency: the figures are the statement's own cost, what batching divides.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import time
import uuid
from pathlib import Path

from benchlib.cpu import CpuMeter
from benchlib.env import BENCH_DB, bench_settings, log, pg_url
from benchlib.postgres import vacuum_bench_database
from benchlib.seeding import ensure_pg_bench
from sqlalchemy import text

from coalition.db import Database
from coalition.ledger import fastpath


async def measure(sizes: list[int], seconds: float) -> list[tuple[str, int, int, float, float, float]]:
    settings = bench_settings(pg_url(BENCH_DB))
    db = Database(settings.database_url, pool_size=2)
    rows = []
    try:
        async with db.read() as conn:
            merchant_id = (await conn.execute(text("SELECT min(id) FROM merchants"))).scalar_one()
            loyalty_ids = list((await conn.execute(text(
                "SELECT loyalty_id FROM members WHERE referred_by_id IS NULL AND owed = 0"))).scalars())
        minor_per_unit = 10**settings.currency_exponent
        for name, statement in (("earn", fastpath._EARN), ("redeem", fastpath._REDEEM)):
            for size in sizes:
                vacuum_bench_database()

                def batch(size: int = size, name: str = name) -> list[dict[str, object]]:
                    now = dt.datetime.now(dt.UTC)
                    return [{
                        "merchant_id": merchant_id, "loyalty_id": loyalty_id, "amount_minor": 5 * minor_per_unit,
                        "minor_per_unit": minor_per_unit, "points": 3, "reference": None,
                        "idempotency_key": f"bs-{name}-{uuid.uuid4().hex}", "request_hash": "bench", "now": now,
                        "expires_at": now + dt.timedelta(days=365),
                    } for loyalty_id in random.sample(loyalty_ids, size)]

                for _ in range(20):  # warm the connection and the statement's plan
                    await fastpath._run(db, statement, batch())
                batches = operations = 0
                with CpuMeter(app_pids=[]) as meter:
                    while meter.t0 + seconds > time.perf_counter():
                        done = await fastpath._run(db, statement, batch())
                        if None in done:
                            raise SystemExit(f"a {name} batch of {size} fell back: {done}")
                        batches += 1
                        operations += size
                rows.append((name, size, operations, meter.wall / batches * 1000, meter.wall / operations * 1000,
                             meter.pg / operations * 1000))
                log(f"{name} x{size}: {rows[-1][3]:.2f} ms per batch, {rows[-1][4]:.3f} ms per operation")
    finally:
        await db.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--members", type=int, default=10_000)
    args = parser.parse_args(argv)
    asyncio.run(ensure_pg_bench(members=args.members, ids_file=Path("/tmp/coalition_bench_loyalty_ids.txt"),
                                fresh=False))
    rows = asyncio.run(measure(args.sizes, args.seconds))
    print("\nOne fast statement at a time, from one task (commit and WAL flush included)")
    print("| op     | batch | operations | ms per batch | ms per operation | PostgreSQL CPU ms per operation |")
    print("|--------|------:|-----------:|-------------:|-----------------:|--------------------------------:|")
    for name, size, operations, per_batch, per_op, pg_per_op in rows:
        print(f"| {name:6s} | {size:5d} | {operations:10d} | {per_batch:12.2f} | {per_op:16.3f} | {pg_per_op:31.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
