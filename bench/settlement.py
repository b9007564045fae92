"""Settlement run vs a bare GROUP BY over the same attributed redemptions (PostgreSQL).

    COALITION_BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/<scratch db> \\
        .venv/bin/python bench/settlement.py --redemptions 2000000 --merchants 5000

The schema in that database is dropped and recreated. Rows are made with
``generate_series`` (not through the ledger: only their shape matters here): one earn and
one lot per merchant, N redemptions spread over ``--pairs`` issuer x redeemer cells, each
with one REDEEM allocation and two postings.
Prints the bare ``SELECT issuer, redeemer, sum(points) GROUP BY`` time, the full
``run_settlement`` time (aggregation, pricing, statements, signing, writing) and the ratio.
The target is a ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time

from sqlalchemy import text

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.models import Base
from coalition.settlement.service import run_settlement

SEED = """
INSERT INTO merchants (id, name, status, earn_rate_points_per_unit, created_at)
  SELECT g, 'shop ' || g, 'ACTIVE', 1, now() FROM generate_series(1::bigint, :m) g;
INSERT INTO members (id, loyalty_id, referral_code, token_hash, balance, held, owed, lifetime_points, created_at)
  VALUES (1, 'LX1', 'R1', 'h1', 0, 0, 0, 0, now());
INSERT INTO entries (id, kind, member_id, merchant_id, points, created_at)
  SELECT g, 'EARN', 1, g, 1000000000, now() - interval '2 days' FROM generate_series(1::bigint, :m) g;
INSERT INTO lots (id, member_id, entry_id, issuer_merchant_id, points, remaining, expires_at, reversed, created_at)
  SELECT g, 1, g, g, 1000000000, 0, now() + interval '1 year', false, now() - interval '2 days'
  FROM generate_series(1::bigint, :m) g;
INSERT INTO postings (entry_id, account, account_id, points)
  SELECT g, 'ISSUED', g, -1000000000 FROM generate_series(1::bigint, :m) g;
INSERT INTO entries (id, kind, member_id, merchant_id, points, created_at)
  SELECT :m + g, 'REDEEM', 1, 1 + (g * 7919) % :m, -(1 + g % 100), now() - interval '1 day'
  FROM generate_series(1::bigint, :n) g;
INSERT INTO allocations (entry_id, lot_id, member_id, issuer_merchant_id, merchant_id, kind, points, created_at)
  SELECT :m + g, 1 + (g % :p) % :m, 1, 1 + (g % :p) % :m, 1 + ((g % :p) / :m + g % :p) % :m, 'REDEEM',
         1 + g % 100, now() - interval '1 day'
  FROM generate_series(1::bigint, :n) g;
INSERT INTO postings (entry_id, account, account_id, points)
  SELECT :m + g, 'MEMBER', 1, -(1 + g % 100) FROM generate_series(1::bigint, :n) g
  UNION ALL SELECT :m + g, 'HONORED', 1 + (g * 7919) % :m, 1 + g % 100 FROM generate_series(1::bigint, :n) g;
"""
BARE = "SELECT issuer_merchant_id, merchant_id, sum(points) FROM allocations GROUP BY 1, 2"


async def main(redemptions: int, merchants: int, pairs: int) -> None:
    url = os.environ["COALITION_BENCH_DATABASE_URL"]
    settings = load_settings({"COALITION_DATABASE_URL": url, "COALITION_SECRET_KEY": "bench"})
    db = Database(settings.database_url, pool_size=2)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        started = time.perf_counter()
        async with db.engine.begin() as conn:
            for statement in SEED.strip().split(";\n"):
                await conn.execute(text(statement), {"m": merchants, "n": redemptions, "p": pairs})
            await conn.execute(text("SELECT setval(pg_get_serial_sequence('entries', 'id'), :x)"),
                               {"x": merchants + redemptions})
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        print(f"seeded {redemptions:,} redemptions across {merchants:,} merchants in "
              f"{time.perf_counter() - started:.1f} s")
        bare = []
        for _ in range(3):
            async with db.read() as conn:
                t = time.perf_counter()
                rows = len(list(await conn.execute(text(BARE))))
                bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = await run_settlement(db, settings, NetworkKeys.from_settings(settings),
                                      period_end=dt.datetime.now(dt.UTC), idempotency_key="bench")
        full = time.perf_counter() - t
        print(f"bare GROUP BY: {min(bare):.2f} s ({rows:,} issuer x redeemer rows)")
        print(f"run_settlement: {full:.2f} s (batch {result.batch.id}, gross {result.batch.gross_minor:,})")
        print(f"ratio: {full / min(bare):.2f} (target <= 1.5)")
    finally:
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redemptions", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=5_000)
    parser.add_argument("--pairs", type=int, default=20_000, help="Distinct issuer x redeemer pairs (matrix cells).")
    args = parser.parse_args()
    asyncio.run(main(args.redemptions, args.merchants, args.pairs))
