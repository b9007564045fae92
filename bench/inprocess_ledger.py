"""In-process ledger benchmark: earn and redeem through :class:`coalition.ledger.service.Ledger`, no HTTP.

    .venv/bin/python bench/inprocess_ledger.py [--seconds 10] [--concurrency 32] [--backends pg sqlite]
                                               [--baseline] [--profile] [--skip-pgbench]

For each backend, ``--concurrency`` asyncio tasks call ``Ledger.earn`` (then
``Ledger.redeem``) in a loop for ``--seconds`` on random members with unique
idempotency keys, and we print tx/s, p50/p99 latency, the benchmark process's CPU per
transaction and the CPU PostgreSQL used. Comparing with ``bench/http_ledger.py`` shows
what HTTP + GraphQL add on top of the ledger.

- pgbench: unless ``--skip-pgbench``, ``pgbench -c <concurrency> -j 2 -T 20`` TPC-B on the
  scratch database ``coalition_pgbench`` in the same server, run first; every PostgreSQL
  row gets a "ratio to pgbench" (tx/s divided by pgbench tps).

- PostgreSQL: ``coalition_bench`` (reused when already seeded, else rebuilt and seeded).
- SQLite: a fresh file ``/tmp/coalition_bench.sqlite`` seeded with ``--sqlite-members``.
- ``--baseline``: the ledger's SQL statements (same statements, same round trips) without
  the ledger code: once as prebuilt ``text()`` through SQLAlchemy's AsyncConnection
  ("sa-text": SQLAlchemy's execution cost without statement building), once through
  asyncpg directly ("asyncpg"). Not a replacement ledger: no error handling beyond the
  happy path, used only to show where the CPU goes.
- ``--profile``: also a 5 s pyinstrument run of each operation on PostgreSQL; the tree
  goes to ``/tmp/coalition_bench/`` and a summary (self time by library and the top
  functions) is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.cpu import CpuMeter, wait_for_quiet
from benchlib.env import BENCH_DB, PG_HOST, PG_USER, bench_settings, loadavg, log, pg_url
from benchlib.pgbench import PgbenchResult, run_pgbench
from benchlib.postgres import vacuum_bench_database
from benchlib.profiles import summarize_pyinstrument
from benchlib.seeding import Seed, check_invariants, ensure_pg_bench, setup_bench_database
from benchlib.wrk import run_tag
from sqlalchemy import text

from coalition.db import Database
from coalition.errors import DomainError
from coalition.ledger.core import request_hash
from coalition.ledger.service import Ledger

OUT = Path("/tmp/coalition_bench")
Op = Callable[[str, str], Awaitable[Any]]  # (loyalty_id, idempotency_key)


@dataclass
class Result:
    backend: str
    op: str
    seconds: float
    latencies_ms: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    cpu_ms_per_tx: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)

    @property
    def tps(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def drive(backend: str, name: str, op: Op, loyalty_ids: list[str], *, seconds: float,
                concurrency: int, quiet: bool = True) -> Result:
    """``concurrency`` tasks calling ``op`` back to back until ``seconds`` have passed."""
    tag = run_tag(f"inproc-{backend}-{name}")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    measured = seconds >= 5  # the warm-ups run 1-2 s
    if measured and backend != "sqlite":  # the ledger and both baselines run on coalition_bench
        vacuum_bench_database()
    if quiet and measured:
        wait_for_quiet()
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(n: int) -> None:
        i = 0
        rnd = random.Random(n)
        while time.perf_counter() < deadline:
            i += 1
            t0 = time.perf_counter()
            try:
                await op(rnd.choice(loyalty_ids), f"{tag}-{n}-{i}")
            except DomainError as error:
                errors[error.code] += 1
                continue
            except Exception as error:  # count and keep going: the figures say how many failed
                errors[type(error).__name__] += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)

    cpu0 = time.process_time()
    with CpuMeter([os.getpid()]) as meter:
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    result = Result(backend, name, elapsed, latencies, errors)
    result.cpu_ms_per_tx = cpu / max(1, len(latencies)) * 1000
    result.cores = meter.cores()
    return result


def ledger_ops(ledger: Ledger, merchant_id: int) -> dict[str, Op]:
    rnd = random.Random(7)

    async def earn(lid: str, key: str) -> Any:
        return await ledger.earn(merchant_id=merchant_id, loyalty_id=lid,
                                 purchase_amount_minor=rnd.randint(100, 10_000), idempotency_key=key)

    async def redeem(lid: str, key: str) -> Any:
        return await ledger.redeem(merchant_id=merchant_id, loyalty_id=lid, points=rnd.randint(1, 20),
                                   idempotency_key=key)

    return {"earn": earn, "redeem": redeem}


# ----------------------------------------------------------------- asyncpg baseline (same SQL, no SQLAlchemy)

EARN_SQL = [
    """INSERT INTO entries (kind, member_id, merchant_id, points, amount_minor, reference, reverses_id, hold_id,
                           idempotency_key, request_hash, created_at)
       SELECT 'EARN', members.id, $1::bigint, ($2::bigint * merchants.earn_rate_points_per_unit) / 100, $2::bigint,
              NULL, NULL, NULL, $3, $4, $5
       FROM members JOIN merchants ON merchants.id = $1::bigint AND merchants.status = 'ACTIVE'
       WHERE members.loyalty_id = $6
       ON CONFLICT DO NOTHING RETURNING id, member_id, points""",
    """UPDATE members SET balance = balance + $1, lifetime_points = lifetime_points + $1
       WHERE id = $2 AND owed = 0 AND balance <= 2147483647 - $1 RETURNING *""",
    """INSERT INTO lots (member_id, entry_id, issuer_merchant_id, points, remaining, expires_at, reversed, created_at)
       VALUES ($1, $2, $3, $4, $4, $5, false, $6)""",
    """INSERT INTO postings (entry_id, account, account_id, points)
       VALUES ($1, 'ISSUED', $2, $3), ($1, 'MEMBER', $4, $5)""",
]
REDEEM_SQL = [
    """INSERT INTO entries (kind, member_id, merchant_id, points, amount_minor, reference, reverses_id, hold_id,
                           idempotency_key, request_hash, created_at)
       SELECT 'REDEEM', members.id, $1::bigint, $2::bigint, NULL, NULL, NULL, NULL, $3, $4, $5
       FROM members JOIN merchants ON merchants.id = $1::bigint AND merchants.status = 'ACTIVE'
       WHERE members.loyalty_id = $6
       ON CONFLICT DO NOTHING RETURNING id, member_id, points""",
    """UPDATE members SET balance = balance - $1 WHERE id = $2 AND balance >= $1 AND owed = 0 RETURNING *""",
    """SELECT id, issuer_merchant_id, remaining FROM lots WHERE member_id = $1 AND remaining > 0
       ORDER BY expires_at, id""",
    """UPDATE lots SET remaining = remaining - $2 WHERE id = $1""",
    """INSERT INTO allocations (entry_id, lot_id, hold_id, member_id, issuer_merchant_id, merchant_id, kind, points,
                               created_at)
       SELECT $1, unnest($2::bigint[]), NULL, $3, unnest($4::bigint[]), $5, 'REDEEM', unnest($6::bigint[]), $7""",
    """INSERT INTO postings (entry_id, account, account_id, points)
       VALUES ($1, 'MEMBER', $2, $3), ($1, 'HONORED', $4, $5)""",
]


async def asyncpg_ops(pool: Any, merchant_id: int) -> dict[str, Op]:
    rnd = random.Random(11)

    async def earn(lid: str, key: str) -> Any:
        amount = rnd.randint(100, 10_000)
        now = dt.datetime.now(dt.UTC)
        fingerprint = request_hash("earn", loyalty_id=lid, amount=amount, reference=None)
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(EARN_SQL[0], merchant_id, amount, key, fingerprint, now, lid)
            entry_id, member_id, points = row
            await conn.fetchrow(EARN_SQL[1], points, member_id)
            await conn.execute(EARN_SQL[2], member_id, entry_id, merchant_id, points,
                               now + dt.timedelta(days=365), now)
            await conn.execute(EARN_SQL[3], entry_id, merchant_id, -points, member_id, points)

    async def redeem(lid: str, key: str) -> Any:
        points = rnd.randint(1, 20)
        now = dt.datetime.now(dt.UTC)
        fingerprint = request_hash("redeem", loyalty_id=lid, points=points, reference=None)
        async with pool.acquire() as conn, conn.transaction():
            entry_id, member_id, _ = await conn.fetchrow(REDEEM_SQL[0], merchant_id, -points, key, fingerprint,
                                                         now, lid)
            if await conn.fetchrow(REDEEM_SQL[1], points, member_id) is None:
                raise DomainError("insufficient points", code="INSUFFICIENT_POINTS")
            left, slices = points, []
            for lot_id, issuer, remaining in await conn.fetch(REDEEM_SQL[2], member_id):
                take = min(left, remaining)
                slices.append((lot_id, issuer, take))
                left -= take
                if left == 0:
                    break
            await conn.executemany(REDEEM_SQL[3], [(lot_id, take) for lot_id, _, take in slices])
            await conn.execute(REDEEM_SQL[4], entry_id, [s[0] for s in slices], member_id, [s[1] for s in slices],
                               merchant_id, [s[2] for s in slices], now)
            await conn.execute(REDEEM_SQL[5], entry_id, member_id, -points, merchant_id, points)

    return {"earn": earn, "redeem": redeem}


def _named(sql: str) -> Any:
    """The asyncpg-style SQL above as a prebuilt SQLAlchemy ``text()`` with :p1, :p2 ... parameters."""
    sql = re.sub(r"\$(\d+)::(\w+(?:\[\])?)", r"CAST(:p\1 AS \2)", sql)  # text() would misread ":p1::bigint"
    return text(re.sub(r"\$(\d+)", r":p\1", sql))


EARN_TEXT = [_named(sql) for sql in EARN_SQL]
REDEEM_TEXT = [_named(sql) for sql in REDEEM_SQL]


def _p(*values: Any) -> dict[str, Any]:
    return {f"p{i}": v for i, v in enumerate(values, 1)}


def sa_text_ops(db: Database, merchant_id: int) -> dict[str, Op]:
    """The same SQL through SQLAlchemy's AsyncConnection, prebuilt once: SQLAlchemy's execution cost alone."""
    rnd = random.Random(13)

    async def earn(lid: str, key: str) -> Any:
        amount = rnd.randint(100, 10_000)
        now = dt.datetime.now(dt.UTC)
        fingerprint = request_hash("earn", loyalty_id=lid, amount=amount, reference=None)
        async with db.transaction() as conn:
            entry_id, member_id, points = (await conn.execute(
                EARN_TEXT[0], _p(merchant_id, amount, key, fingerprint, now, lid))).one()
            (await conn.execute(EARN_TEXT[1], _p(points, member_id))).one()
            await conn.execute(EARN_TEXT[2], _p(member_id, entry_id, merchant_id, points,
                                                now + dt.timedelta(days=365), now))
            await conn.execute(EARN_TEXT[3], _p(entry_id, merchant_id, -points, member_id, points))

    async def redeem(lid: str, key: str) -> Any:
        points = rnd.randint(1, 20)
        now = dt.datetime.now(dt.UTC)
        fingerprint = request_hash("redeem", loyalty_id=lid, points=points, reference=None)
        async with db.transaction() as conn:
            entry_id, member_id, _ = (await conn.execute(
                REDEEM_TEXT[0], _p(merchant_id, -points, key, fingerprint, now, lid))).one()
            if (await conn.execute(REDEEM_TEXT[1], _p(points, member_id))).first() is None:
                raise DomainError("insufficient points", code="INSUFFICIENT_POINTS")
            left, slices = points, []
            for lot_id, issuer, remaining in await conn.execute(REDEEM_TEXT[2], _p(member_id)):
                take = min(left, remaining)
                slices.append((lot_id, issuer, take))
                left -= take
                if left == 0:
                    break
            await conn.execute(REDEEM_TEXT[3], [_p(lot_id, take) for lot_id, _, take in slices])
            await conn.execute(REDEEM_TEXT[4], _p(entry_id, [s[0] for s in slices], member_id,
                                                  [s[1] for s in slices], merchant_id, [s[2] for s in slices], now))
            await conn.execute(REDEEM_TEXT[5], _p(entry_id, member_id, -points, merchant_id, points))

    return {"earn": earn, "redeem": redeem}


# ----------------------------------------------------------------- runs


async def run_backend(backend: str, database_url: str, seed: Seed, args: argparse.Namespace) -> list[Result]:
    settings = bench_settings(database_url)
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    ops = ledger_ops(Ledger(db, settings), seed.merchant_id)
    results = []
    try:
        for name in ("earn", "redeem"):
            await drive(backend, name, ops[name], seed.loyalty_ids, seconds=2, concurrency=args.concurrency)  # warm
            log(f"{backend} {name}: {args.concurrency} tasks for {args.seconds} s (load {loadavg()})")
            result = await drive(backend, name, ops[name], seed.loyalty_ids, seconds=args.seconds,
                                 concurrency=args.concurrency)
            log(f"  {result.tps:.0f} tx/s p50 {result.pct(50):.1f} ms p99 {result.pct(99):.1f} ms "
                f"cpu {result.cpu_ms_per_tx:.2f} ms/tx cores {result.cores} errors {dict(result.errors)}")
            results.append(result)
    finally:
        await db.dispose()
    return results


async def run_baseline(seed: Seed, args: argparse.Namespace) -> list[Result]:
    """The ledger's SQL without the ledger: prebuilt text() through SQLAlchemy, then asyncpg directly."""
    import asyncpg

    results = []
    settings = bench_settings(pg_url(BENCH_DB))
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    pool = await asyncpg.create_pool(f"postgresql://{PG_USER}@{PG_HOST}:5432/{BENCH_DB}", min_size=args.concurrency,
                                     max_size=args.concurrency)
    try:
        for backend, ops in (("sa-text", sa_text_ops(db, seed.merchant_id)),
                             ("asyncpg", await asyncpg_ops(pool, seed.merchant_id))):
            for name in ("earn", "redeem"):
                await drive(backend, name, ops[name], seed.loyalty_ids, seconds=2, concurrency=args.concurrency)
                log(f"{backend} baseline {name}: {args.concurrency} tasks for {args.seconds} s (load {loadavg()})")
                result = await drive(backend, name, ops[name], seed.loyalty_ids, seconds=args.seconds,
                                     concurrency=args.concurrency)
                log(f"  {result.tps:.0f} tx/s p50 {result.pct(50):.1f} ms p99 {result.pct(99):.1f} ms "
                    f"cpu {result.cpu_ms_per_tx:.2f} ms/tx cores {result.cores} errors {dict(result.errors)}")
                results.append(result)
    finally:
        await pool.close()
        await db.dispose()
    return results


async def profile(seed: Seed, args: argparse.Namespace) -> None:
    from pyinstrument import Profiler

    database_url = pg_url(BENCH_DB)
    settings = bench_settings(database_url)
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    ops = ledger_ops(Ledger(db, settings), seed.merchant_id)
    OUT.mkdir(exist_ok=True)
    try:
        for name in ("earn", "redeem"):
            await drive("pg", name, ops[name], seed.loyalty_ids, seconds=1, concurrency=args.concurrency)
            wait_for_quiet()
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
            result = await drive("pg", name, ops[name], seed.loyalty_ids, seconds=5, concurrency=args.concurrency,
                                 quiet=False)
            profiler.stop()
            session = profiler.last_session
            assert session is not None
            path = OUT / f"inprocess-{name}.txt"
            path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
            (OUT / f"inprocess-{name}.html").write_text(profiler.output_html())
            print(f"\n## pyinstrument, Ledger.{name} on PostgreSQL, {args.concurrency} tasks, 5 s "
                  f"({result.tps:.0f} tx/s under the profiler); full tree: {path}")
            print(summarize_pyinstrument(session, top=args.top))
    finally:
        await db.dispose()


def print_table(results: list[Result], pgbench: PgbenchResult | None = None) -> None:
    header = (f"| {'backend':8} | {'op':6} | {'tx/s':>6} | {'ratio to pgbench':>16} | {'p50 ms':>7} | {'p99 ms':>7} | "
              f"{'CPU ms/tx':>9} | {'bench cores':>11} | {'pg cores':>8} | {'other':>5} | errors |")
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for r in results:
        errors = ", ".join(f"{k} {v}" for k, v in r.errors.items()) or "0"
        ratio = f"{r.tps / pgbench.tps:>16.2f}" if pgbench and r.backend != "sqlite" else f"{'-':>16}"
        print(f"| {r.backend:8} | {r.op:6} | {r.tps:>6.0f} | {ratio} | {r.pct(50):>7.1f} | {r.pct(99):>7.1f} | "
              f"{r.cpu_ms_per_tx:>9.2f} | {r.cores.get('app', 0):>11.2f} | {r.cores.get('pg', 0):>8.2f} | "
              f"{r.cores.get('other', 0):>5.2f} | {errors} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--sqlite-members", type=int, default=2_000)
    parser.add_argument("--backends", nargs="+", default=["pg", "sqlite"], choices=["pg", "sqlite"])
    parser.add_argument("--fresh", action="store_true", help="rebuild coalition_bench even if it is seeded")
    parser.add_argument("--baseline", action="store_true", help="also run the same SQL through asyncpg directly")
    parser.add_argument("--profile", action="store_true", help="also profile earn and redeem with pyinstrument")
    parser.add_argument("--top", type=int, default=15, help="functions to list in the profile summary")
    parser.add_argument("--skip-pgbench", action="store_true", help="no pgbench baseline (no ratio column)")
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 20:
        parser.error("--seconds must be 1..20")

    async def run() -> int:
        results: list[Result] = []
        violations: dict[str, list[str]] = {}
        pg_seed = None
        pgbench = None
        if "pg" in args.backends or args.baseline or args.profile:
            pg_seed = await ensure_pg_bench(members=args.members, ids_file=Path("/tmp/coalition_bench_ids_pg.txt"),
                                            fresh=args.fresh)
        if ("pg" in args.backends or args.baseline) and not args.skip_pgbench:
            pgbench = run_pgbench(clients=args.concurrency, seconds=args.pgbench_seconds)
            log(f"pgbench: {pgbench.tps:.0f} tps")
        if "pg" in args.backends:
            assert pg_seed is not None
            results += await run_backend("pg", pg_url(BENCH_DB), pg_seed, args)
        if args.baseline:
            assert pg_seed is not None
            results += await run_baseline(pg_seed, args)
        if "pg" in args.backends or args.baseline:
            violations["pg"] = await check_invariants(pg_url(BENCH_DB))
        if "sqlite" in args.backends:
            path = Path("/tmp/coalition_bench.sqlite")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            url = f"sqlite+aiosqlite:///{path}"
            log(f"seeding SQLite {path} with {args.sqlite_members} members")
            seed = await setup_bench_database(url, members=args.sqlite_members,
                                              ids_file=Path("/tmp/coalition_bench_ids_sqlite.txt"))
            results += await run_backend("sqlite", url, seed, args)
            violations["sqlite"] = await check_invariants(url)
        print()
        print(f"In-process ledger, {args.concurrency} concurrent asyncio tasks, {args.seconds:g} s per run, "
              f"{os.cpu_count()} cores")
        if pgbench is not None:
            print(f"{pgbench.label()}: {pgbench.tps:.0f} tps, latency avg {pgbench.latency_ms:.1f} ms "
                  f"({pgbench.command})")
        print_table(results, pgbench)
        print()
        for backend, problems in violations.items():
            print(f"ledger invariants ({backend}): {'OK (no violations)' if not problems else problems[:10]}")
        if args.profile:
            assert pg_seed is not None
            await profile(pg_seed, args)
        return 1 if any(violations.values()) else 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
