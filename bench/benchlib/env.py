"""Where the benchmarks run: paths, the PostgreSQL server and bench database names, the
environment a bench API process gets, and logging.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from coalition.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]  # bench/benchlib/env.py -> the repository


BENCH = ROOT / "bench"


# A git worktree has no .venv of its own: the interpreter running the bench then names it.
VENV_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv").exists() else Path(sys.executable).parent


PG_HOST = "127.0.0.1"


PG_USER = "postgres"


# Overridable, so that two people (or two worktrees) benchmarking on one server do not share a database.
BENCH_DB = os.environ.get("COALITION_BENCH_DB", "coalition_bench")


PGBENCH_DB = os.environ.get("COALITION_PGBENCH_DB", "coalition_pgbench")


FORBIDDEN_DBS = {"test", "postgres", "template0", "template1"}


SECRET = "bench-secret-not-for-production-0123456789"


def pg_url(dbname: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:5432/{dbname}"


def bench_env(database_url: str) -> dict[str, str]:
    """Environment for a uvicorn process serving the bench database."""
    env = dict(os.environ)
    env.update(
        COALITION_DATABASE_URL=database_url,
        COALITION_SECRET_KEY=SECRET,
        COALITION_RATE_LIMIT_PER_S="1000000",
        COALITION_AUTH_CACHE_S="30",
        COALITION_HOLD_SWEEP_INTERVAL_S="0",
        # One merchant redeems from every member again and again: above the default allowance a
        # till would send the member's proof of presence. The allowance is still read and checked
        # on every redemption; only its size is lifted.
        COALITION_REDEEM_WITHOUT_PROOF_POINTS="100000000",
    )
    env.pop("COALITION_REDIS_URL", None)
    return env


def bench_settings(database_url: str) -> Settings:
    return load_settings(bench_env(database_url))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[0]
