"""What the webhooks outbox costs the one-statement earn (PostgreSQL), in process, no HTTP.

    PYTHONPATH=. .venv/bin/python bench/webhook_outbox_cost.py --database-url postgresql+asyncpg://.../db \
        [--seconds 8] [--concurrency 32] [--members 2000]

Rebuilds the schema in the given database (use a scratch one), onboards three merchants and
seeds members, then runs ``--concurrency`` tasks calling ``Ledger.earn`` for ``--seconds`` in
three setups, each on its own merchant: ``no hooks`` (the ledger as before webhooks: no commit
hooks installed), ``hooks, no endpoint`` (installed; the merchant has no endpoint: the cached
check says no and the statement's outbox CTE joins nothing) and ``endpoint`` (the merchant has
one: each earn also writes its outbox row in the same statement). Prints earns/s and p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from typing import Any

from sqlalchemy import func, select, text

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Base, Database
from coalition.ledger.service import Ledger
from coalition.members.models import Member
from coalition.partners.service import onboard_merchant
from coalition.webhooks.models import WebhookDelivery
from coalition.webhooks.outbox import install
from coalition.webhooks.service import create_endpoint


async def seed_members(db: Database, count: int) -> list[str]:
    from coalition.members.loyalty_id import new_loyalty_id

    rows = [{"loyalty_id": new_loyalty_id(), "referral_code": f"R{i:08d}", "balance": 0, "held": 0, "owed": 0,
             "lifetime_points": 0} for i in range(count)]
    async with db.transaction() as conn:
        await conn.execute(Member.__table__.insert(), rows)
    return [str(r["loyalty_id"]) for r in rows]


async def run(ledger: Ledger, merchant_id: int, members: list[str], seconds: float, concurrency: int,
              tag: str) -> tuple[float, float, float]:
    keys = itertools.count()
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def worker(n: int) -> None:
        while time.monotonic() < stop:
            i = next(keys)
            started = time.perf_counter()
            await ledger.earn(merchant_id=merchant_id, loyalty_id=members[i % len(members)],
                              purchase_amount_minor=1000, idempotency_key=f"{tag}-{i}")
            latencies.append(time.perf_counter() - started)

    began = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.monotonic() - began
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000


async def main(args: Any) -> None:
    settings = load_settings({"COALITION_DATABASE_URL": args.database_url, "COALITION_SECRET_KEY": "bench"})
    keys = NetworkKeys.from_settings(settings)
    db = Database(settings.database_url, pool_size=40)
    async with db.engine.begin() as conn:  # a scratch database: everything in it goes
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
        await conn.run_sync(Base.metadata.create_all)
    shops = [(await onboard_merchant(db, name=f"Shop {n}", category=None, earn_rate_points_per_unit=1)).merchant.id
             for n in range(3)]
    members = await seed_members(db, args.members)
    await create_endpoint(db, keys, merchant_id=shops[2], url="http://127.0.0.1:9/x", events=["points.earned"],
                          idempotency_key="bench", allowed_hosts=frozenset({"127.0.0.1"}))
    ledger = Ledger(db, settings)
    await run(ledger, shops[0], members, 2, args.concurrency, "warm")
    results = []
    for rounds in range(args.rounds):
        db.hooks = None
        results.append(("no hooks", *await run(ledger, shops[0], members, args.seconds, args.concurrency,
                                               f"a{rounds}")))
        install(db, cache_s=1.0)
        results.append(("hooks, no endpoint", *await run(ledger, shops[1], members, args.seconds, args.concurrency,
                                                         f"b{rounds}")))
        results.append(("endpoint", *await run(ledger, shops[2], members, args.seconds, args.concurrency,
                                               f"c{rounds}")))
    async with db.read() as conn:
        outbox = (await conn.execute(select(func.count()).select_from(WebhookDelivery))).scalar_one()
    print(f"{'setup':<22}{'earns/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, rate, p50, p99 in results:
        print(f"{name:<22}{rate:>10.0f}{p50:>9.2f}{p99:>9.2f}")
    print(f"outbox rows written: {outbox}")
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
