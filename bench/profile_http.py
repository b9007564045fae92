"""Profile the HTTP path with py-spy: one uvicorn worker under wrk load (earn, redeem, gift card spends).

    .venv/bin/python bench/profile_http.py [--seconds 10] [--rate 100] [--ops earn,redeem,gift]

Reuses the seeded ``coalition_bench`` (or builds it), starts ``uvicorn --workers 1``,
sells gift cards when ``gift`` is asked, warms up, then records the worker with
``py-spy record --format raw --nonblocking`` while ``wrk -t2 -c32`` drives each mutation. The collapsed stacks go to
``/tmp/<COALITION_BENCH_DB>/http-<op>.txt``; the summary printed here (self and inclusive
time by layer, key functions, top functions) is what docs/benchmarks-journal.md quotes. Needs
``py-spy`` in the virtualenv (``.venv/bin/pip install py-spy``).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

from benchlib.cpu import wait_for_quiet
from benchlib.env import BENCH, BENCH_DB, VENV_BIN, log, pg_url
from benchlib.profiles import HTTP_KEY_FUNCTIONS, read_pyspy_raw, summarize_stacks
from benchlib.seeding import ensure_pg_bench, seed_gift_cards
from benchlib.server import Server
from benchlib.wrk import run_tag, run_wrk

OUT = Path(f"/tmp/{BENCH_DB}")  # per database: two profiles at once keep their own stacks
SCRIPTS = {"earn": "earn.lua", "redeem": "redeem.lua", "gift": "gift_spend.lua"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=8712)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--ops", default="earn,redeem", help="comma-separated: earn, redeem, gift")
    parser.add_argument("--gift-cards", type=int, default=500, help="cards to sell for the gift run")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 20:
        parser.error("--seconds must be 1..20")
    ops = args.ops.split(",")
    if any(op not in SCRIPTS for op in ops):
        parser.error(f"--ops takes {', '.join(SCRIPTS)}")
    OUT.mkdir(exist_ok=True)
    ids_file = Path(f"/tmp/{BENCH_DB}_ids_profile.txt")
    codes_file = Path(f"/tmp/{BENCH_DB}_gift_codes_profile.txt")
    seed = asyncio.run(ensure_pg_bench(members=args.members, ids_file=ids_file, fresh=False))
    if "gift" in ops:
        asyncio.run(seed_gift_cards(pg_url(BENCH_DB), seed.merchant_id, cards=args.gift_cards, codes_file=codes_file))
    with Server(pg_url(BENCH_DB), workers=1, port=args.port) as server:
        pid = server.worker_pids()[0]
        for op in ops:
            script = BENCH / SCRIPTS[op]
            op_ids = codes_file if op == "gift" else ids_file
            run_wrk(script, server.url, seed.api_key, ids_file=op_ids, tag=run_tag(f"warm-{op}"), seconds=3)
            raw = OUT / f"http-{op}.txt"
            wait_for_quiet()
            spy = subprocess.Popen([
                str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(args.seconds),
                "--rate", str(args.rate), "--format", "raw", "--nonblocking", "--output", str(raw),
            ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            log(f"profiling {op}: py-spy on pid {pid}, wrk {args.seconds} s")
            result = run_wrk(script, server.url, seed.api_key, ids_file=op_ids, tag=run_tag(f"profile-{op}"),
                             seconds=args.seconds, app_pids=[pid])
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                print(err.decode(errors="replace"), file=sys.stderr)
                return 1
            print(f"\n## py-spy, HTTP {op}, 1 uvicorn worker, wrk -t2 -c32 -d{args.seconds}s "
                  f"({result.rps:.0f} req/s, p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms while sampled; "
                  f"cores {result.cpu}); stacks: {raw}")
            print(summarize_stacks(read_pyspy_raw(raw), top=args.top, key_functions=HTTP_KEY_FUNCTIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
