"""Memory of the uvicorn worker(s) under a long run of earnPoints: RSS every 10k requests.

    .venv/bin/python bench/rss.py [--requests 100000] [--every 10000] [--workers 1]

Reuses the seeded ``coalition_bench`` (or builds it) with a fresh merchant key, starts
``uvicorn --workers N`` (with 1 worker the app runs in uvicorn's main process: that pid is
sampled; with 2 each spawned worker process is sampled and the largest decides the verdict),
and drives it with ``wrk -t2 -c32 -s bench/earn.lua`` in bounded chunks (<= 20 s each,
sized to about ``--every`` requests from the measured rate). wrk cannot stop after a
fixed count, so requests are counted from each chunk's output; after each chunk the
worker's VmRSS and VmHWM are read from /proc/<pid>/status and the series is printed at
every ``--every`` boundary. Target: <= 200 MB per worker, and flat (the second half of the
run adds less than 5 % of the final RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib.env import BENCH, BENCH_DB, log, pg_url
from benchlib.seeding import count_entries, ensure_pg_bench
from benchlib.server import Server
from benchlib.wrk import run_tag, run_wrk

TARGET_MB = 200.0


@dataclass
class Sample:
    requests: int
    rss_by_pid: dict[int, float]
    hwm_by_pid: dict[int, float]
    seconds: float
    rps: float
    p99_ms: float

    @property
    def rss_mb(self) -> float:
        return max(self.rss_by_pid.values())

    @property
    def hwm_mb(self) -> float:
        return max(self.hwm_by_pid.values())


def sample(pids: list[int], requests: int, seconds: float, rps: float, p99_ms: float) -> Sample:
    memory = {pid: memory_mb(pid) for pid in pids}
    return Sample(requests, {pid: m[0] for pid, m in memory.items()}, {pid: m[1] for pid, m in memory.items()},
                  seconds, rps, p99_ms)


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB -> MB (MiB)
    return values["VmRSS"], values["VmHWM"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=8713)
    parser.add_argument("--workers", type=int, default=1, choices=[1, 2])
    parser.add_argument("--max-chunk-s", type=int, default=20)
    args = parser.parse_args(argv)
    if not 1 <= args.max_chunk_s <= 20:
        parser.error("--max-chunk-s must be 1..20")

    ids_file = Path("/tmp/coalition_bench_ids_rss.txt")
    seed = asyncio.run(ensure_pg_bench(members=args.members, ids_file=ids_file, fresh=False))
    script = BENCH / "earn.lua"
    tag = run_tag("rss")
    samples: list[Sample] = []
    started = time.perf_counter()
    with Server(pg_url(BENCH_DB), workers=args.workers, port=args.port) as server:
        pids = server.worker_pids()
        if len(pids) != args.workers:
            raise SystemExit(f"expected {args.workers} worker process(es), found {pids}")
        samples.append(sample(pids, 0, 0.0, 0.0, 0.0))
        log(f"worker pid(s) {pids}: {samples[0].rss_by_pid} MB after start")
        total = 0
        rate = 100.0  # first guess, replaced by the measured rate
        chunk = 0
        bad = 0
        while total < args.requests:
            next_mark = (total // args.every + 1) * args.every
            seconds = max(2, min(args.max_chunk_s, round((next_mark - total) / rate)))
            chunk += 1
            result = run_wrk(script, server.url, seed.api_key, ids_file=ids_file, tag=f"{tag}-{chunk}",
                             seconds=seconds)
            total += result.requests
            bad += result.non_2xx + result.socket_errors + result.counts.get("user_errors", 0)
            rate = max(1.0, result.rps)
            samples.append(sample(pids, total, time.perf_counter() - started, result.rps, result.p99_ms))
            log(f"{total:>7} requests: RSS {samples[-1].rss_by_pid} MB (peak {samples[-1].hwm_mb:.1f}), "
                f"{result.rps:.0f} req/s")
    written = asyncio.run(count_entries(pg_url(BENCH_DB), tag)).get("EARN", 0)

    # The series at each --every boundary: the first sample at or past it.
    series = [samples[0]]
    for mark in range(args.every, args.requests + 1, args.every):
        first = next((s for s in samples if s.requests >= mark), None)
        if first is not None and first is not series[-1]:
            series.append(first)
    print()
    print(f"RSS of the uvicorn worker process(es) {pids} ({args.workers} worker(s)) under wrk -t2 -c32 "
          f"earnPoints; {total} requests in {samples[-1].seconds:.0f} s, {chunk} wrk chunks")
    per_pid = " | ".join(f"RSS MB pid {pid}" for pid in pids)
    print(f"| requests | {per_pid} | peak (VmHWM) MB | req/s (last chunk) | p99 ms (last chunk) |")
    print("|---------:|" + "---------:|" * len(pids) + "----------------:|-------------------:|-------------------:|")
    for s in series:
        cells = " | ".join(f"{s.rss_by_pid[pid]:>6.1f}" for pid in pids)
        print(f"| {s.requests:>8} | {cells} | {s.hwm_mb:>15.1f} | {s.rps:>18.0f} | {s.p99_ms:>19.1f} |")
    after_first = series[1] if len(series) > 1 else series[0]
    half = next((s for s in series if s.requests >= total // 2), series[-1])
    final = series[-1]
    print()
    print(f"after {after_first.requests} requests: {after_first.rss_mb:.1f} MB; at {half.requests}: "
          f"{half.rss_mb:.1f} MB; at {final.requests}: {final.rss_mb:.1f} MB (peak {final.hwm_mb:.1f} MB)")
    growth = max(final.rss_by_pid[pid] - half.rss_by_pid[pid] for pid in pids)  # the worst worker
    print(f"growth over the second half: {growth:+.1f} MB "
          f"({growth / max(1, (final.requests - half.requests)) * 10_000:+.2f} MB per 10k requests)")
    met = final.hwm_mb <= TARGET_MB and growth <= 0.05 * final.rss_mb
    print(f"target <= {TARGET_MB:.0f} MB and flat: {'met' if met else 'NOT met'}")
    print(f"failed responses (non-2xx, socket errors, userErrors): {bad}; entries written under the run's keys: "
          f"{written} (wrk counted {total} completed requests)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
