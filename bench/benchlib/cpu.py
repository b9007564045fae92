"""CPU accounting on this shared 2-core machine: where a run's CPU went, and waiting for quiet."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from benchlib.env import log

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _postgres_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(int(p.name)) == "postgres"]


class CpuMeter:
    """Where the machine's CPU went during a load run: app workers, postgres, wrk, everything else.

    ``other`` is the machine's busy time minus the three we know: other people's work on a
    shared machine shows up there (and makes the run's figures pessimistic).
    """

    def __init__(self, app_pids: list[int]) -> None:
        self.app_pids = app_pids

    def __enter__(self) -> CpuMeter:
        self.t0 = time.perf_counter()
        self.busy0 = _machine_busy_s()
        self.app0 = {pid: _proc_cpu_s(pid) for pid in self.app_pids}
        self.pg0 = {pid: _proc_cpu_s(pid) for pid in _postgres_pids()}
        self.children0 = _children_cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.app = sum(_proc_cpu_s(pid) - self.app0.get(pid, 0.0) for pid in self.app_pids)
        self.pg = sum(_proc_cpu_s(pid) - self.pg0.get(pid, 0.0) for pid in _postgres_pids())
        self.wrk = _children_cpu_s() - self.children0
        self.busy = _machine_busy_s() - self.busy0
        self.other = max(0.0, self.busy - self.app - self.pg - self.wrk)

    def cores(self) -> dict[str, float]:
        """Average cores busy during the run, by consumer (the machine has 2)."""
        return {name: round(getattr(self, name) / self.wall, 2) for name in ("app", "pg", "wrk", "other", "busy")}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(max_cores: float = 0.3, window_s: float = 2.0, max_wait_s: float = 120.0) -> float:
    """Wait (bounded) until the machine's busy CPU over ``window_s`` is below ``max_cores``.

    Others share this 2-core machine; starting a run while they work skews it. Returns the
    busy cores last seen (the run goes ahead after ``max_wait_s`` either way).
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        before = _machine_busy_s()
        time.sleep(window_s)
        cores = (_machine_busy_s() - before) / window_s
        if cores < max_cores or time.monotonic() > deadline:
            if cores >= max_cores:
                log(f"machine still busy ({cores:.2f} cores) after {max_wait_s:.0f} s; running anyway")
            return cores
