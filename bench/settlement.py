"""Settlement run vs a bare GROUP BY over the same attributed redemptions (PostgreSQL or SQLite).

    createdb -h 127.0.0.1 -U postgres coalition_settle_bench
    COALITION_BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/coalition_settle_bench \\
        .venv/bin/python bench/settlement.py --redemptions 10000000 --merchants 5000 --pairs 200000
    COALITION_BENCH_DATABASE_URL=sqlite+aiosqlite:////tmp/settle_bench.sqlite \\
        .venv/bin/python bench/settlement.py --redemptions 1000000 --merchants 5000 --pairs 200000

The schema in that database is dropped and recreated, unless ``--reuse`` finds rows of
the same shape already there (then only the settlement tables are recreated). Rows are
made set-based in the database (``generate_series`` on PostgreSQL, a recursive CTE on
SQLite; not through the ledger: only their shape matters here), with the secondary
indexes built after the rows: one earn and one lot per merchant, N redemptions spread
over ``--pairs`` issuer x redeemer cells (each issuer honored by ``pairs / merchants``
redeemers), each with one REDEEM allocation and two postings.

Alternates the bare ``SELECT issuer, redeemer, sum(points) GROUP BY`` (``--runs`` + 1 times)
with ``--runs`` full ``run_settlement`` runs (aggregation, pricing, statements, signing,
writing, as the CLI calls it, with a progress callback; the settlement tables are emptied
before each), so both see the same load on a shared machine, and prints min and median of
each, the ratios and the process's peak RSS (``ru_maxrss``). The target is a ratio <= 1.5
and a peak RSS <= 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import statistics
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.models import Base
from coalition.settlement.service import run_settlement

# {series} is a FROM item yielding g = 1..:{bound}; {ts1}/{ts2} are timestamps 2 days / 1 day ago.
SEED = """
INSERT INTO merchants (id, name, status, earn_rate_points_per_unit, created_at)
  SELECT g, 'shop ' || g, 'ACTIVE', 1, :t0 FROM {series_m};
INSERT INTO members (id, loyalty_id, referral_code, enroll_request_hash, balance, held, owed, lifetime_points,
                     created_at)
  VALUES (1, 'LX1', 'R1', :shape, 0, 0, 0, 0, :t0);
INSERT INTO entries (id, kind, member_id, merchant_id, points, created_at)
  SELECT g, 'EARN', 1, g, 1000000000, :t2 FROM {series_m};
INSERT INTO lots (id, member_id, entry_id, issuer_merchant_id, points, remaining, expires_at, reversed, created_at)
  SELECT g, 1, g, g, 1000000000, 0, :t9, false, :t2 FROM {series_m};
INSERT INTO postings (entry_id, account, account_id, points)
  SELECT g, 'ISSUED', g, -1000000000 FROM {series_m};
INSERT INTO entries (id, kind, member_id, merchant_id, points, created_at)
  SELECT :m + g, 'REDEEM', 1, 1 + ((g % :p) / :m + g % :p) % :m, -(1 + g % 100), :t1 FROM {series_n};
INSERT INTO allocations (entry_id, lot_id, member_id, issuer_merchant_id, merchant_id, kind, points, created_at)
  SELECT :m + g, 1 + (g % :p) % :m, 1, 1 + (g % :p) % :m, 1 + ((g % :p) / :m + g % :p) % :m, 'REDEEM',
         1 + g % 100, :t1
  FROM {series_n};
INSERT INTO postings (entry_id, account, account_id, points)
  SELECT :m + g, 'MEMBER', 1, -(1 + g % 100) FROM {series_n};
INSERT INTO postings (entry_id, account, account_id, points)
  SELECT :m + g, 'HONORED', 1 + ((g % :p) / :m + g % :p) % :m, 1 + g % 100 FROM {series_n}
"""
PG_SERIES = "generate_series(1::bigint, :{bound}) g"
SQLITE_SERIES = "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :{bound}) SELECT g FROM s)"
SETTLEMENT_TABLES = ("settlement_windows", "settlement_positions", "settlement_lines", "settlement_batches")
BARE = "SELECT issuer_merchant_id, merchant_id, sum(points) FROM allocations GROUP BY 1, 2"
SHAPE = "SELECT enroll_request_hash FROM members WHERE id = 1"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


async def _seed(db: Database, conn: AsyncConnection, redemptions: int, merchants: int, pairs: int) -> None:
    now = dt.datetime.now(dt.UTC)
    stamps = {"t0": now, "t1": now - dt.timedelta(days=1), "t2": now - dt.timedelta(days=2),
              "t9": now + dt.timedelta(days=365)}
    params: dict[str, object] = {"m": merchants, "n": redemptions, "p": pairs,
                                 "shape": _shape_tag(redemptions, merchants, pairs)}
    if db.is_sqlite:  # stored naive, as coalition.db.UTCDateTime writes them
        params.update({k: v.replace(tzinfo=None).isoformat(sep=" ") for k, v in stamps.items()})
        series = SQLITE_SERIES
    else:
        params.update(stamps)
        series = PG_SERIES
    # Secondary indexes after the rows: building them once is much faster than row by row.
    indexes = [index for table in Base.metadata.sorted_tables for index in table.indexes]
    for index in indexes:
        await conn.run_sync(lambda sync, ix=index: ix.drop(sync))  # type: ignore[misc]
    sql = SEED.format(series_m=series.format(bound="m"), series_n=series.format(bound="n"))
    for statement in sql.strip().split(";\n"):
        t = time.perf_counter()
        await conn.execute(text(statement), params)
        log(f"  {statement.split(chr(10))[0][:60]}... {time.perf_counter() - t:.1f} s")
    for index in indexes:
        await conn.run_sync(lambda sync, ix=index: ix.create(sync))  # type: ignore[misc]
    if not db.is_sqlite:
        await conn.execute(text("SELECT setval(pg_get_serial_sequence('entries', 'id'), :x)"),
                           {"x": merchants + redemptions})


def _shape_tag(redemptions: int, merchants: int, pairs: int) -> str:
    return f"bench n={redemptions} m={merchants} p={pairs}"  # kept as the one member's enroll_request_hash


async def _shape(db: Database) -> str | None:
    try:
        async with db.read() as conn:
            return (await conn.execute(text(SHAPE))).scalar_one_or_none()
    except Exception:  # no schema yet
        return None


async def _clear_batches(db: Database) -> None:
    async with db.transaction() as conn:
        for table in SETTLEMENT_TABLES:
            await conn.execute(text(f"DELETE FROM {table}"))


async def main(redemptions: int, merchants: int, pairs: int, reuse: bool, runs: int) -> None:
    url = os.environ["COALITION_BENCH_DATABASE_URL"]
    settings = load_settings({"COALITION_DATABASE_URL": url, "COALITION_SECRET_KEY": "bench"})
    db = Database(settings.database_url, pool_size=2)
    try:
        if reuse and await _shape(db) == _shape_tag(redemptions, merchants, pairs):
            log(f"reusing {redemptions:,} redemptions across {merchants:,} merchants")
            # The settlement tables as the models describe them now (the rows are the ledger's).
            settlement = [Base.metadata.tables[t] for t in SETTLEMENT_TABLES]
            async with db.engine.begin() as conn:
                for table in SETTLEMENT_TABLES:  # children first, whatever foreign keys they had
                    await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
                await conn.run_sync(lambda sync: Base.metadata.create_all(sync, tables=settlement))
        else:
            async with db.engine.begin() as conn:
                await conn.run_sync(Base.metadata.drop_all)
                await conn.run_sync(Base.metadata.create_all)
            started = time.perf_counter()
            async with db.transaction() as conn:
                await _seed(db, conn, redemptions, merchants, pairs)
            log(f"seeded {redemptions:,} redemptions across {merchants:,} merchants in "
                f"{time.perf_counter() - started:.1f} s")
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE" if not db.is_sqlite else "ANALYZE"))
        bare: list[float] = []
        full: list[float] = []
        rows = lines = 0
        result = None
        stages: list[tuple[str, float]] = []
        # Alternate bare, full, bare, ... so that both see the same load on a shared machine.
        for run in range(runs + 1):
            async with db.read() as conn:
                t = time.perf_counter()
                rows = len(list(await conn.execute(text(BARE))))
                bare.append(time.perf_counter() - t)
            if run == runs:
                break
            await _clear_batches(db)
            stages.clear()
            t = time.perf_counter()

            def progress(stage: str, done: int, total: int, t: float = t) -> None:
                stages.append((stage, time.perf_counter() - t))

            result = await run_settlement(db, settings, NetworkKeys.from_settings(settings),
                                          period_end=dt.datetime.now(dt.UTC), idempotency_key=f"bench-{run}",
                                          progress=progress)
            full.append(time.perf_counter() - t)
        assert result is not None
        async with db.read() as conn:
            lines = (await conn.execute(text("SELECT count(*) FROM settlement_lines"))).scalar_one()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log(f"bare GROUP BY: min {min(bare):.2f} s, median {statistics.median(bare):.2f} s "
            f"({', '.join(f'{b:.2f}' for b in bare)}; {rows:,} issuer x redeemer rows)")
        log(f"run_settlement: min {min(full):.2f} s, median {statistics.median(full):.2f} s "
            f"({', '.join(f'{f:.2f}' for f in full)}; {lines:,} lines, gross {result.batch.gross_minor:,})")
        log("last run's stages (s from start): " + ", ".join(f"{name} {at:.2f}" for name, at in stages))
        log(f"ratio: {min(full) / min(bare):.2f} min/min, {statistics.median(full) / statistics.median(bare):.2f} "
            f"median/median (target <= 1.5); peak RSS {rss_mb:,.0f} MB (target <= 1024); "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redemptions", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=5_000)
    parser.add_argument("--pairs", type=int, default=200_000, help="Distinct issuer x redeemer pairs (matrix cells).")
    parser.add_argument("--reuse", action="store_true", help="Keep the rows if the database already has this shape.")
    parser.add_argument("--runs", type=int, default=3, help="Settlement runs, each after a bare GROUP BY.")
    args = parser.parse_args()
    asyncio.run(main(args.redemptions, args.merchants, args.pairs, args.reuse, args.runs))
