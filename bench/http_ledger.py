"""HTTP ledger benchmark: earnPoints / redeemPoints / redeemGiftCard over GraphQL vs pgbench TPC-B on the same server.

    .venv/bin/python bench/http_ledger.py [--members 10000] [--seconds 20] [--workers 1 2]
                                          [--pgbench-seconds 20] [--floor] [--programs] [--reuse] [--drop]
                                          [--shared-socket]

1. Recreates ``coalition_bench`` (schema from the models), onboards one merchant and
   enrolls ``--members`` members, each seeded with 100,000 points.
2. ``pgbench -i -s 10`` into ``coalition_pgbench`` (same PostgreSQL server), then
   ``pgbench -c 32 -j 2 -T 20 -M prepared``: the baseline every req/s figure is divided by.
3. For each worker count: starts ``coalition serve`` (``--shared-socket``: the ``uvicorn``
   command, whose workers share one listening socket), warms up (3 s of earn, 3 s of redeem), runs
   ``wrk -t2 -c32 -d20s --latency -s bench/earn.lua`` and then the same with redeem.lua,
   stops uvicorn. Each request picks a random member and a unique idempotency key. With
   ``--gift-cards N`` (default 2000) the same merchant sells N cards first, and a third run,
   ``gift``, spends one minor unit of a random card per request (bench/gift_spend.lua), so its
   ratio to pgbench is printed beside the redemptions' from the same run.
   With ``--programs`` a further run, ``earn+prog``, earns again with a tier ladder that multiplies
   every member's points and a campaign doubling them for 90 % of the members
   (``bench/benchlib/programs.py``); the default ladder is put back after it.
4. Checks that the entries written under each run's key prefix equal the requests that
   returned 200 without userErrors (wrk does not count requests still in flight when the
   run ends, so the database may hold up to ``connections`` more), then checks the
   ledger invariants.

Talks to 127.0.0.1 only; every load run is bounded (<= 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import programs as bench_programs
from benchlib.cpu import wait_for_quiet
from benchlib.env import BENCH, BENCH_DB, PGBENCH_DB, log, pg_url
from benchlib.pgbench import PgbenchResult, run_pgbench
from benchlib.postgres import drop_pg_databases, pg_sessions_opened, vacuum_bench_database
from benchlib.seeding import Seed, check_invariants, count_entries, ensure_pg_bench, seed_gift_cards
from benchlib.server import EARN_QUERY, REDEEM_QUERY, Server, connections_per_worker, graphql_post
from benchlib.wrk import WrkResult, run_tag, run_wrk

from coalition.db import utcnow

SCRIPTS = {"earn": BENCH / "earn.lua", "redeem": BENCH / "redeem.lua", "gift": BENCH / "gift_spend.lua",
           "floor": BENCH / "floor.lua", "earn+prog": BENCH / "earn.lua"}
KIND = {"earn": "EARN", "redeem": "REDEEM", "gift": "REDEEM", "earn+prog": "EARN"}
GIFT_CODES = Path(f"/tmp/{BENCH_DB}_gift_codes.txt")  # per database: two benches at once keep their own files
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


@dataclass
class Row:
    op: str
    workers: int
    wrk: WrkResult
    written: int
    tag: str
    spread: tuple[int, ...]  # connections each worker held halfway through the run
    sessions_opened: int  # PostgreSQL connections the API opened during the run

    @property
    def spread_label(self) -> str:
        return " / ".join(str(n) for n in self.spread) or "-"

    @property
    def accounted(self) -> int:
        return self.wrk.counts.get("ok", 0)


def smoke(server: Server, seed: Seed) -> None:
    """One earn and one redeem by hand, so a broken endpoint fails loudly before any load."""
    lid = seed.loyalty_ids[0]
    earn = graphql_post(server.url, seed.api_key, EARN_QUERY, {"lid": lid, "amt": 1000, "k": run_tag("smoke-earn")})
    redeem = graphql_post(server.url, seed.api_key, REDEEM_QUERY, {"lid": lid, "p": 1, "k": run_tag("smoke-redeem")})
    for name, body in (("earn", earn), ("redeem", redeem)):
        payload = (body.get("data") or {}).get(f"{name}Points")
        if not payload or payload.get("userErrors") or body.get("errors"):
            raise SystemExit(f"smoke {name} failed: {json.dumps(body)[:500]}")


def _record_spread(into: list[tuple[int, ...]], port: int, pids: list[int]) -> None:
    into.append(connections_per_worker(port, pids))


def bench_workers(workers: int, seed: Seed, database_url: str, *, seconds: int, port: int,
                  extra_path: str | None, floor: bool, connections: int = 32, nodelay: bool = False,
                  gift_cards: int = 0, with_programs: bool = False, shared_socket: bool = False,
                  quiet_wait_s: float = 120.0) -> list[Row]:
    rows: list[Row] = []
    gift = gift_cards > 0
    log(f"starting uvicorn with {workers} worker(s){' (TCP_NODELAY protocol)' if nodelay else ''}")
    with Server(database_url, workers=workers, port=port, extra_path=extra_path, nodelay=nodelay,
                shared_socket=shared_socket) as server:
        smoke(server, seed)
        log("warming up (3 s earn, 3 s redeem)")
        for op in ("earn", "redeem", *(["gift"] if gift else [])):
            run_wrk(SCRIPTS[op], server.url, seed.api_key, ids_file=GIFT_CODES if op == "gift" else seed.ids_file,
                    tag=run_tag(f"warm-{op}"), seconds=3)
        for op in ("earn", "redeem", *(["gift"] if gift else []), *(["earn+prog"] if with_programs else []),
                   *(["floor"] if floor else [])):
            if op in KIND:
                vacuum_bench_database()
            tag = run_tag(f"{op.replace('+', '-')}-w{workers}")
            if op == "earn+prog":
                # Wait for a quiet machine first, then start the campaign: it must run through the measurement.
                wait_for_quiet(max_wait_s=quiet_wait_s)
                started_at = utcnow()
                asyncio.run(bench_programs.enable(database_url, seed.merchant_id, run_s=seconds + 30,
                                                  key=run_tag("bench-campaign")))
                time.sleep(2.5)  # the API processes' program caches re-read within 2 s
                run_wrk(SCRIPTS[op], server.url, seed.api_key, ids_file=seed.ids_file,
                        tag=run_tag(f"warm-{op.replace('+', '-')}"), seconds=3)
            log(f"wrk {op}, {workers} worker(s), {seconds} s")
            pids = server.worker_pids()
            if op != "earn+prog":  # (that one waited above, before its campaign started)
                wait_for_quiet(max_wait_s=quiet_wait_s)  # before the halfway timer, which must fall inside the run
            spread: list[tuple[int, ...]] = []
            halfway = threading.Timer(seconds / 2, _record_spread, args=(spread, port, pids))
            halfway.start()
            sessions_before = pg_sessions_opened(BENCH_DB)
            result = run_wrk(SCRIPTS[op], server.url, seed.api_key,
                             ids_file=GIFT_CODES if op == "gift" else seed.ids_file, tag=tag,
                             seconds=seconds, connections=connections, app_pids=pids)
            sessions = pg_sessions_opened(BENCH_DB) - sessions_before
            halfway.join()
            table = "gift_card_entries" if op == "gift" else "entries"
            written = asyncio.run(count_entries(database_url, tag, table)).get(KIND[op], 0) if op in KIND else 0
            if op == "earn+prog":
                boosted = asyncio.run(bench_programs.earns_with_program_points(database_url, started_at))
                log(f"  earns that got tier or campaign points: {boosted}")
                asyncio.run(bench_programs.disable(database_url))
            rows.append(Row(op, workers, result, written, tag, spread[0] if spread else (), sessions))
            log(f"  {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                f"counts {result.counts}, codes {result.error_codes}, written {written}, cores {result.cpu}, "
                f"connections per worker {rows[-1].spread_label}")
    return rows


def print_report(pgbench: PgbenchResult, rows: list[Row], violations: list[str], seed: Seed,
                 extra_path: str | None = None, nodelay: bool = False, shared_socket: bool = False) -> None:
    print()
    print(f"{pgbench.label()}: {pgbench.tps:.0f} tps, "
          f"latency avg {pgbench.latency_ms:.1f} ms, p50 {pgbench.p50_ms:.1f} ms, p99 {pgbench.p99_ms:.1f} ms")
    if nodelay:
        print("server: uvicorn --http nodelay:NoDelayH11Protocol (bench/nodelay.py: TCP_NODELAY on every connection)")
    elif shared_socket:
        print("server: the uvicorn command, its workers sharing one listening socket (not coalition serve)")
    if extra_path:
        print(f"server PYTHONPATH extra: {extra_path} (uvicorn picks uvloop/httptools from there when present)")
    print(f"members: {len(seed.loyalty_ids)}; targets: req/s >= {TARGET_RATIO} x pgbench tps "
          f"({TARGET_RATIO * pgbench.tps:.0f}) and p99 <= {TARGET_P99_MS:.0f} ms")
    print()
    header = (f"| {'op':6} | {'workers':>7} | {'req/s':>7} | {'p50 ms':>7} | {'p90 ms':>7} | {'p99 ms':>7} | "
              f"{'ratio to pgbench':>16} | {'ratio >= 0.5':12} | {'p99 <= 50 ms':12} | {'target met':10} | "
              f"{'connections per worker':22} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")

    def yn(flag: bool, op: str) -> str:
        return ("yes" if flag else "no") if op in KIND else "-"

    for row in rows:
        ratio = row.wrk.rps / pgbench.tps
        ratio_ok, p99_ok = ratio >= TARGET_RATIO, row.wrk.p99_ms <= TARGET_P99_MS
        print(f"| {row.op:6} | {row.workers:>7} | {row.wrk.rps:>7.0f} | {row.wrk.p50_ms:>7.1f} | "
              f"{row.wrk.p90_ms:>7.1f} | {row.wrk.p99_ms:>7.1f} | {ratio:>16.2f} | {yn(ratio_ok, row.op):12} | "
              f"{yn(p99_ok, row.op):12} | {yn(ratio_ok and p99_ok, row.op):10} | {row.spread_label:22} |")
    print()
    print("Correctness per run (wrk counts completed responses; entries are counted in the database by key prefix):")
    header = (f"| {'op':6} | {'workers':>7} | {'requests':>8} | {'200 ok':>7} | {'userErrors':>10} | "
              f"{'non-2xx':>7} | {'sock err':>8} | {'entries':>7} | {'entries - ok':>12} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        w = row.wrk
        written = f"{row.written:>7}" if row.op in KIND else f"{'-':>7}"
        diff = f"{row.written - row.accounted:>12}" if row.op in KIND else f"{'-':>12}"
        print(f"| {row.op:6} | {row.workers:>7} | {w.requests:>8} | {w.counts.get('ok', 0):>7} | "
              f"{w.counts.get('user_errors', 0):>10} | {w.non_2xx:>7} | {w.socket_errors:>8} | {written} | {diff} |")
    print()
    print("CPU during each run, in cores busy (the machine has 2; 'other' is work that is not this benchmark's), "
          "and the PostgreSQL connections the API opened during it:")
    header = (f"| {'op':6} | {'workers':>7} | {'app':>5} | {'postgres':>8} | {'wrk':>5} | {'other':>5} | "
              f"{'total':>5} | {'app CPU ms/req':>14} | {'pg CPU ms/req':>13} | {'pg sessions opened':>18} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        c = row.wrk.cpu
        rps = max(row.wrk.rps, 1e-9)
        print(f"| {row.op:6} | {row.workers:>7} | {c.get('app', 0):>5.2f} | {c.get('pg', 0):>8.2f} | "
              f"{c.get('wrk', 0):>5.2f} | {c.get('other', 0):>5.2f} | {c.get('busy', 0):>5.2f} | "
              f"{c.get('app', 0) / rps * 1000:>14.2f} | {c.get('pg', 0) / rps * 1000:>13.2f} | "
              f"{row.sessions_opened:>18} |")
    codes = {f"{r.op}/w{r.workers}": r.wrk.error_codes for r in rows if r.wrk.error_codes}
    if codes:
        print("error codes:", json.dumps(codes))
        for row in rows:
            for sample in row.wrk.samples[1:]:
                print(f"  sample {row.op}/w{row.workers}: {sample}")
    print()
    print(f"ledger invariants: {'OK (no violations)' if not violations else f'{len(violations)} violations'}")
    for problem in violations[:20]:
        print("  " + problem)
    print()
    print("commands:")
    print("  " + pgbench.command)
    seen: set[str] = set()
    for row in rows:
        generic = row.wrk.command.replace(row.tag, "<tag>")
        if generic not in seen:
            seen.add(generic)
            print("  " + generic)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=20, help="each wrk run (at most 20)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections and pgbench clients")
    parser.add_argument("--pgbench-seconds", type=int, default=20, help="pgbench -T (at most 60)")
    parser.add_argument("--nodelay", action="store_true",
                        help="serve with bench/nodelay.py's h11 protocol (TCP_NODELAY on; see that module)")
    parser.add_argument("--shared-socket", action="store_true",
                        help="serve with the uvicorn command (its workers share one listening socket) instead of "
                        "coalition serve (a socket per worker), to compare the two")
    parser.add_argument("--quiet-wait-s", type=float, default=120.0,
                        help="before each run, wait at most this long for the machine to fall quiet")
    parser.add_argument("--drop", action="store_true",
                        help="drop coalition_bench and coalition_pgbench at the end")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gift-cards", type=int, default=2000,
                        help="gift cards to sell before the runs (0: no gift card run)")
    parser.add_argument("--port", type=int, default=8711)
    parser.add_argument("--skip-pgbench", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="reuse a seeded coalition_bench instead of rebuilding it")
    parser.add_argument("--floor", action="store_true",
                        help="also run bench/floor.lua ({ __typename } with auth): HTTP + GraphQL without the ledger")
    parser.add_argument("--programs", action="store_true",
                        help="also run earnPoints with a tier multiplier and an active campaign (earn+prog)")
    parser.add_argument("--extra-path", help="directory added to the server's PYTHONPATH (e.g. holding uvloop, "
                        "httptools: pip install --target DIR uvloop httptools)")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 20:
        parser.error("--seconds must be 1..20")

    database_url = pg_url(BENCH_DB)
    ids_file = Path(f"/tmp/{BENCH_DB}_loyalty_ids.txt")
    seed = asyncio.run(ensure_pg_bench(members=args.members, ids_file=ids_file, fresh=not args.reuse))
    if args.gift_cards:
        asyncio.run(seed_gift_cards(database_url, seed.merchant_id, cards=args.gift_cards, codes_file=GIFT_CODES))

    pgbench = PgbenchResult(float("nan"), float("nan"), "(skipped)") if args.skip_pgbench else run_pgbench(
        clients=args.connections, seconds=args.pgbench_seconds)
    log(f"pgbench: {pgbench.tps:.0f} tps")

    rows: list[Row] = []
    for workers in args.workers:
        rows.extend(bench_workers(workers, seed, database_url, seconds=args.seconds, port=args.port,
                                  extra_path=args.extra_path, floor=args.floor, connections=args.connections,
                                  nodelay=args.nodelay, gift_cards=args.gift_cards, with_programs=args.programs,
                                  shared_socket=args.shared_socket, quiet_wait_s=args.quiet_wait_s))

    log("checking ledger invariants")
    violations = asyncio.run(check_invariants(database_url))
    print_report(pgbench, rows, violations, seed, args.extra_path, args.nodelay, args.shared_socket)
    if args.drop:
        drop_pg_databases()
        log(f"dropped {BENCH_DB} and {PGBENCH_DB}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
