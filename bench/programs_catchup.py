"""The programs job's cost on PostgreSQL: its query plans and a run's time, on a ledger of N entries.

    PYTHONPATH=. .venv/bin/python bench/programs_catchup.py postgresql+asyncpg://.../DB [--entries 1000000]

DROPS AND RECREATES THE SCHEMA of the database named (use a scratch database). Writes N earns
spread evenly over 30 days across 20 shops and 50 members, and reverses one in a hundred; one
shop runs a stamp card, three a quest. Prints the window's first id (the bisection) with its
time, EXPLAIN (ANALYZE, BUFFERS) of the job's three queries over the last day, then times three
runs: the first (every earn of the day lacks its stamp and visit: a backlog no crash makes), a
second over the whole day with nothing missing, and a third resumed where the second ended.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time

from sqlalchemy import text

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Base, Database, utcnow
from coalition.ledger.service import Ledger
from coalition.members.service import enroll_member
from coalition.partners.service import onboard_merchant
from coalition.programs import catchup, quests, stamps
from coalition.programs.rewards import create_reward

EARNS = """
INSERT INTO entries (kind, member_id, merchant_id, points, amount_minor, idempotency_key, request_hash, created_at)
SELECT 'EARN', (CAST(:members AS bigint[]))[1 + g % 50], (CAST(:shops AS bigint[]))[1 + (g / 7) % 20], 10, 1000,
       'k' || g, 'h', CAST(:start AS timestamptz) + g * CAST(:step AS interval)
FROM generate_series(1, CAST(:n AS int)) g"""
REVERSALS = """
INSERT INTO entries (kind, member_id, merchant_id, points, reverses_id, idempotency_key, request_hash, created_at)
SELECT 'REVERSAL', member_id, merchant_id, -points, id, 'r' || id, 'h', created_at + interval '1 second'
FROM entries WHERE id % 100 = 0 ORDER BY id"""


async def build(db: Database, url: str, entries: int, now: dt.datetime) -> Ledger:
    settings = load_settings({"COALITION_DATABASE_URL": url, "COALITION_SECRET_KEY": "bench-secret-key"})
    keys = NetworkKeys.from_settings(settings)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
        await conn.run_sync(Base.metadata.create_all)
    shops = [(await onboard_merchant(db, name=f"Shop {i}", earn_rate_points_per_unit=1)).merchant.id
             for i in range(20)]
    members = [(await enroll_member(db, keys, merchant_id=shops[0], idempotency_key=f"m{i}")).member.id
               for i in range(50)]
    async with db.transaction() as conn:
        await conn.execute(text(EARNS), {"members": members, "shops": shops, "n": entries,
                                         "start": now - dt.timedelta(days=30), "step": dt.timedelta(days=30) / entries})
        await conn.execute(text(REVERSALS))
    ledger = Ledger(db, settings)
    before = now - dt.timedelta(days=40)
    reward = await create_reward(db, merchant_id=shops[0], name="Coffee", points_cost=10, idempotency_key="rw",
                                 now=before)
    await stamps.create_stamp_card(ledger, merchant_id=shops[0], name="Card", stamps_required=10,
                                   min_purchase_minor=500, reward_id=reward.id, idempotency_key="c", now=before)
    await quests.create_quest(db, name="Tour", merchant_ids=shops[1:4], visits_required=3, window_days=30,
                              bonus_points=100, funding="NETWORK", starts_at=before,
                              ends_at=now + dt.timedelta(days=10), idempotency_key="q", now=before)
    async with db.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    return ledger


async def main(url: str, entries: int) -> None:
    db = Database(url, pool_size=4)
    now = utcnow()
    ledger = await build(db, url, entries, now)
    since, until = now - dt.timedelta(days=1), now - dt.timedelta(seconds=60)
    async with db.read() as conn:
        started = time.perf_counter()
        first = await catchup.first_entry_id_since(conn, since)
        print(f"bisection: first id {first} in {1000 * (time.perf_counter() - started):.1f} ms")
        live = catchup._live_earns(first, since, until)
        for name, query in (("stamps", catchup._unstamped(live)), ("visits", catchup._unvisited(live)),
                            ("reversals", catchup._undone(first, since, until))):
            sql = query.limit(catchup.PAGE).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))).scalars().all()
            print(f"--- {name}\n" + "\n".join(plan))
    through = None
    for run, resume in (("first run (the whole day missing)", False), ("second run (nothing missing)", False),
                        ("third run (resumed)", True)):
        started = time.perf_counter()
        done = await catchup.catch_up(ledger, now=now + dt.timedelta(seconds=60 if resume else 0),
                                      look_back_s=86_400, grace_s=60, resume_from=through if resume else None)
        print(f"{run}: {done} in {1000 * (time.perf_counter() - started):.0f} ms")
        through = done.through
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.entries))
