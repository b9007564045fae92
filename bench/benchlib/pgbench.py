"""The baseline: pgbench's TPC-B on a scratch database in the same PostgreSQL server."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchlib.cpu import wait_for_quiet
from benchlib.env import BENCH_DB, PG_HOST, PG_USER, PGBENCH_DB, log
from benchlib.postgres import recreate_pg_database


@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float
    command: str
    clients: int = 32
    threads: int = 2
    seconds: int = 20
    scale: int = 10
    p50_ms: float = float("nan")  # per-transaction latency percentiles, from pgbench's --log
    p99_ms: float = float("nan")

    def label(self) -> str:
        return (f"pgbench TPC-B (scale {self.scale}, {self.clients} clients, {self.threads} threads, "
                f"{self.seconds} s, prepared)")


def init_pgbench_database(scale: int = 10) -> None:
    """A fresh ``coalition_pgbench`` holding pgbench's TPC-B tables at ``scale``."""
    if PGBENCH_DB != BENCH_DB:  # one database for both (COALITION_PGBENCH_DB): pgbench -i replaces only its tables
        recreate_pg_database(PGBENCH_DB)
    subprocess.run(["pgbench", "-h", PG_HOST, "-U", PG_USER, "-i", "-q", "-s", str(scale), PGBENCH_DB],
                   check=True, capture_output=True)


def run_pgbench(clients: int = 32, threads: int = 2, seconds: int = 20, scale: int = 10) -> PgbenchResult:
    """TPC-B on a scratch database (``coalition_pgbench``) in the same PostgreSQL server as the bench.

    Every transaction's latency is logged (``--log``, third column in microseconds), so the
    baseline's own p50 and p99 are printed beside ours."""
    if not 1 <= seconds <= 60:
        raise ValueError("keep the pgbench run at 60 s or less")
    init_pgbench_database(scale)
    base = ["pgbench", "-h", PG_HOST, "-U", PG_USER]
    with tempfile.TemporaryDirectory() as logs:
        cmd = [*base, "-c", str(clients), "-j", str(threads), "-T", str(seconds), "-M", "prepared", "--log",
               f"--log-prefix={logs}/pgbench", PGBENCH_DB]
        wait_for_quiet()
        log("running " + " ".join(cmd))
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        latencies = sorted(int(line.split()[2]) for path in Path(logs).iterdir()
                           for line in path.read_text().splitlines() if line.strip())
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    if tps is None:
        raise RuntimeError("could not read tps from pgbench:\n" + out)

    def percentile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000 if latencies else float("nan")

    shown = " ".join(cmd).replace(logs, "$TMP")
    return PgbenchResult(float(tps.group(1)), float(latency.group(1)) if latency else float("nan"), shown,
                         clients, threads, seconds, scale, percentile(0.5), percentile(0.99))
