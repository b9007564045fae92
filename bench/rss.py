"""Memory of one uvicorn worker under a long run of earnPoints: RSS every 10k requests.

    .venv/bin/python bench/rss.py [--requests 100000] [--every 10000]

Reuses the seeded ``coalition_bench`` (or builds it) with a fresh merchant key, starts
``uvicorn --workers 1`` (which runs the app in its main process: that pid is sampled),
and drives it with ``wrk -t2 -c32 -s bench/earn.lua`` in bounded chunks (<= 20 s each,
sized to about ``--every`` requests from the measured rate). wrk cannot stop after a
fixed count, so requests are counted from each chunk's output; after each chunk the
worker's VmRSS and VmHWM are read from /proc/<pid>/status and the series is printed at
every ``--every`` boundary. Target: <= 200 MB, and flat (the second half of the run
adds little).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import BENCH, BENCH_DB, Server, count_entries, ensure_pg_bench, log, pg_url, run_tag, run_wrk

TARGET_MB = 200.0


@dataclass
class Sample:
    requests: int
    rss_mb: float
    hwm_mb: float
    seconds: float
    rps: float
    p99_ms: float


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
    with Server(pg_url(BENCH_DB), workers=1, port=args.port) as server:
        pid = server.worker_pids()[0]
        rss, hwm = memory_mb(pid)
        samples.append(Sample(0, rss, hwm, 0.0, 0.0, 0.0))
        log(f"worker pid {pid}: {rss:.1f} MB after start")
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
            rss, hwm = memory_mb(pid)
            samples.append(Sample(total, rss, hwm, time.perf_counter() - started, result.rps, result.p99_ms))
            log(f"{total:>7} requests: RSS {rss:.1f} MB (peak {hwm:.1f}), {result.rps:.0f} req/s")
    written = asyncio.run(count_entries(pg_url(BENCH_DB), tag)).get("EARN", 0)

    # The series at each --every boundary: the first sample at or past it.
    series = [samples[0]]
    for mark in range(args.every, args.requests + 1, args.every):
        first = next((s for s in samples if s.requests >= mark), None)
        if first is not None and first is not series[-1]:
            series.append(first)
    print()
    print(f"RSS of the single uvicorn worker (pid {pid}) under wrk -t2 -c32 earnPoints; "
          f"{total} requests in {samples[-1].seconds:.0f} s, {chunk} wrk chunks")
    print("| requests | RSS MB | peak (VmHWM) MB | req/s (last chunk) |")
    print("|---------:|-------:|----------------:|-------------------:|")
    for s in series:
        print(f"| {s.requests:>8} | {s.rss_mb:>6.1f} | {s.hwm_mb:>15.1f} | {s.rps:>18.0f} |")
    after_first = series[1] if len(series) > 1 else series[0]
    half = next((s for s in series if s.requests >= total // 2), series[-1])
    final = series[-1]
    print()
    print(f"after {after_first.requests} requests: {after_first.rss_mb:.1f} MB; at {half.requests}: "
          f"{half.rss_mb:.1f} MB; at {final.requests}: {final.rss_mb:.1f} MB (peak {final.hwm_mb:.1f} MB)")
    growth = final.rss_mb - half.rss_mb
    print(f"growth over the second half: {growth:+.1f} MB "
          f"({growth / max(1, (final.requests - half.requests)) * 10_000:+.2f} MB per 10k requests)")
    met = final.hwm_mb <= TARGET_MB and growth <= 0.05 * final.rss_mb
    print(f"target <= {TARGET_MB:.0f} MB and flat: {'met' if met else 'NOT met'}")
    print(f"failed responses (non-2xx, socket errors, userErrors): {bad}; entries written under the run's keys: "
          f"{written} (wrk counted {total} completed requests)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
