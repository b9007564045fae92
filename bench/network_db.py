"""The network analysis against a database: bulk-load a synthetic network, analyse, read insights.

    COALITION_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/SCRATCH \\
        .venv/bin/python bench/network_db.py [--members 1000000] [--skip-load] [--once] [--verbose]

Use a scratch database: it is migrated and filled (``coalition demo --members N``'s path).
Prints seconds for the bulk load, each analysis run's stages (two runs: with and without
the map) and milliseconds per read of a stored scope (database, then Redis if
``COALITION_REDIS_URL`` is set).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.demo import create_synthetic_demo
from coalition.migrate import migrate
from coalition.network.jobs import run_analysis
from coalition.network.store import NETWORK_SCOPE, InsightStore, merchant_scope


def _rss_gb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in GB (Linux)."""
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return current / 2**30, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


_last = [time.perf_counter(), time.process_time()]


def _progress(stage: str, done: int, total: int) -> None:
    """Each step's start: seconds and CPU seconds since the previous one, RSS now and peak."""
    now, cpu = time.perf_counter(), time.process_time()
    current, peak = _rss_gb()
    print(f"  -> {stage:22s} {now - _last[0]:7.2f} s (cpu {cpu - _last[1]:6.2f} s) since the previous step; "
          f"RSS {current:.2f} GB, peak {peak:.2f} GB", flush=True)
    _last[:] = [now, cpu]


async def main(members: int, skip_load: bool, verbose: bool, once: bool) -> None:
    settings = load_settings()
    await migrate(settings)
    db = Database(settings.database_url, pool_size=2)
    try:
        if not skip_load:
            started = time.perf_counter()
            demo = await create_synthetic_demo(db, settings, NetworkKeys.from_settings(settings), members=members)
            print(f"bulk load: {members:,} members, {demo.total_merchants} merchants, "
                  f"{sum(demo.transactions.values()):,} transactions in {time.perf_counter() - started:.1f} s")
        for draw_map in (True,) if once else (True, False):
            run = await run_analysis(db, settings, draw_map=draw_map, progress=_progress if verbose else None)
            seconds = (run.computed_at - run.started_at).total_seconds()
            print(f"analysis run {run.run_id} (map: {draw_map}): {seconds:.1f} s; "
                  f"stages: {json.dumps(run.summary['timings_s'])}")
        for redis_url in (None, settings.redis_url) if settings.redis_url else (None,):
            store = InsightStore(db, redis_url)
            where = "redis" if redis_url else "database"
            for scope in (NETWORK_SCOPE, merchant_scope(1)):
                await store.latest(scope)
                started, n = time.perf_counter(), 50
                for _ in range(n):
                    await store.latest(scope)
                print(f"read {scope} ({where}): {(time.perf_counter() - started) / n * 1000:.2f} ms")
            if redis_url is None:  # RFM columns are read from the database only
                started, n = time.perf_counter(), 50
                for _ in range(n):
                    await store.member_rfm(1, 1)
                each_ms = (time.perf_counter() - started) / n * 1000
                print(f"read one member's RFM at merchant 1 (database): {each_ms:.2f} ms")
            await store.aclose()
    finally:
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--skip-load", action="store_true", help="analyse what the database already holds")
    parser.add_argument("--verbose", action="store_true", help="print each step's time and RSS as it starts")
    parser.add_argument("--once", action="store_true", help="one analysis run (with the map), not two")
    args = parser.parse_args()
    asyncio.run(main(args.members, args.skip_load, args.verbose, args.once))
