"""Load generation with wrk (the Lua scripts in bench/) and reading its report."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib.cpu import CpuMeter, wait_for_quiet

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


@dataclass
class WrkResult:
    command: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    counts: dict[str, int] = field(default_factory=dict)  # from the Lua script: ok, user_errors, bad_status
    error_codes: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # cores busy during the run, by consumer


def run_wrk(script: Path, url: str, api_key: str, *, ids_file: Path, tag: str, seconds: int, threads: int = 2,
            connections: int = 32, timeout_s: int = 10, app_pids: list[int] | None = None,
            quiet: bool = False) -> WrkResult:
    if seconds > 20:
        raise ValueError("keep each load run at 20 s or less")
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", f"--timeout={timeout_s}s",
        "-s", str(script), "-H", f"Authorization: Bearer {api_key}", url + "/graphql", "--", str(ids_file), tag,
    ]
    shown = " ".join(cmd).replace(api_key, "$KEY")
    if quiet:
        wait_for_quiet()
    with CpuMeter(app_pids or []) as meter:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 30).stdout
    result = parse_wrk(out, shown)
    result.cpu = meter.cores()
    return result


def parse_wrk(out: str, command: str) -> WrkResult:
    def grab(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, out, re.MULTILINE)
        if match is None:
            if default is not None:
                return default
            raise RuntimeError(f"could not find {pattern!r} in wrk output:\n{out}")
        return match.group(1)

    done = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", out, re.MULTILINE)
    if done is None:
        raise RuntimeError("could not read the request count from wrk:\n" + out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bench_line = grab(r"^BENCH (\{.*\})$", "{}")
    extra = json.loads(bench_line)
    return WrkResult(
        command=command,
        requests=int(done.group(1)),
        seconds=_ms(done.group(2)) / 1000,
        rps=float(grab(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)")),
        p90_ms=_ms(grab(r"^\s+90%\s+(\S+)")),
        p99_ms=_ms(grab(r"^\s+99%\s+(\S+)")),
        max_ms=_ms(grab(r"Latency\s+\S+\s+\S+\s+(\S+)")),
        non_2xx=int(grab(r"Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=sum(int(x) for x in socket.groups()) if socket else 0,
        counts={k: int(v) for k, v in extra.get("counts", {}).items()},
        error_codes={k: int(v) for k, v in extra.get("codes", {}).items()},
        samples=list(extra.get("samples", [])),
    )


def run_tag(op: str) -> str:
    """A unique idempotency-key prefix for one load run."""
    return f"{op}-{int(time.time())}-{secrets.token_hex(3)}"
