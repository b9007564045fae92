"""Pauses of Python's cyclic garbage collector in a uvicorn worker under earnPoints load.

    .venv/bin/python bench/gc_pauses.py [--seconds 15] [--port 8735]

Reuses the seeded ``coalition_bench`` (or builds it), starts ``uvicorn --workers 1`` with a
``sitecustomize`` on PYTHONPATH that times every collection through ``gc.callbacks``, drives
it with ``wrk -t2 -c32 -s bench/earn.lua`` for ``--seconds``, and prints, per generation,
how many collections ran, their total and longest pause, and every full (generation 2)
collection with its time from the start of the load, its pause and what it collected. A full
collection stops every request in flight for as long as it runs, so it shows up in p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib.env import BENCH, BENCH_DB, pg_url
from benchlib.seeding import ensure_pg_bench
from benchlib.server import Server
from benchlib.wrk import run_tag, run_wrk

# Loaded by the worker at interpreter start; writes its record every second to a file named by pid.
RECORDER = '''
import gc, json, os, threading, time
_begun, _done = {}, {0: [], 1: [], 2: []}
def _timed(phase, info):
    if phase == "start":
        _begun["t"] = time.perf_counter()
    else:
        pause_ms = (time.perf_counter() - _begun.pop("t", time.perf_counter())) * 1000
        _done[info["generation"]].append((time.monotonic(), round(pause_ms, 2), info["collected"]))
gc.callbacks.append(_timed)
def _write():
    while True:
        time.sleep(1)
        path = os.path.join(os.environ["GC_PAUSES_DIR"], f"{os.getpid()}.json")
        with open(path + ".tmp", "w") as out:
            json.dump({"collections": _done, "tracked": len(gc.get_objects()),
                       "frozen": gc.get_freeze_count()}, out)
        os.replace(path + ".tmp", path)
threading.Thread(target=_write, daemon=True).start()
'''


def read_record(path: Path) -> dict[str, Any]:
    """The worker's latest record (it writes one a second)."""
    for _ in range(50):
        if path.exists():
            record: dict[str, Any] = json.loads(path.read_text())
            return record
        time.sleep(0.1)
    raise SystemExit(f"the worker wrote no record to {path}: was sitecustomize loaded?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=8735)
    args = parser.parse_args(argv)

    ids_file = Path("/tmp/coalition_bench_loyalty_ids.txt")
    seed = asyncio.run(ensure_pg_bench(members=args.members, ids_file=ids_file, fresh=False))
    with tempfile.TemporaryDirectory() as site, tempfile.TemporaryDirectory() as records:
        Path(site, "sitecustomize.py").write_text(RECORDER)
        os.environ["GC_PAUSES_DIR"] = records  # the server's environment is a copy of ours
        try:
            with Server(pg_url(BENCH_DB), workers=1, port=args.port, extra_path=site) as server:
                pid = server.worker_pids()[0]
                load_from = time.monotonic()  # the same clock as the worker's (CLOCK_MONOTONIC)
                result = run_wrk(BENCH / "earn.lua", server.url, seed.api_key, ids_file=ids_file,
                                 tag=run_tag("gc"), seconds=args.seconds, app_pids=[pid])
                time.sleep(1.5)
                record = read_record(Path(records, f"{pid}.json"))
        finally:
            del os.environ["GC_PAUSES_DIR"]
    print(f"earnPoints, 1 worker, wrk -t2 -c32 -d{args.seconds}s: {result.rps:.0f} req/s, "
          f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms")
    print(f"objects the collector tracks: {record['tracked']:,}; frozen (out of its reach): {record['frozen']:,}")
    def split(generation: str) -> tuple[list[list[float]], list[list[float]]]:
        collections = record["collections"][generation]
        return ([c for c in collections if c[0] < load_from], [c for c in collections if c[0] >= load_from])

    print("| generation | collections under load | total pause ms | longest ms |")
    print("|---|---:|---:|---:|")
    for generation in ("0", "1", "2"):
        pauses = [pause for _, pause, _ in split(generation)[1]]
        print(f"| {generation} | {len(pauses)} | {sum(pauses):.1f} | {max(pauses, default=0.0):.1f} |")
    before, during = split("2")
    print("full collections (seconds from the start of the load, pause ms, objects collected):")
    for label, collections in (("before the load", before), ("under load", during)):
        print(f"  {label}: " + ", ".join(f"({t - load_from:+.1f}, {p}, {c})" for t, p, c in collections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
