"""Shared helpers for the ledger benchmarks: databases, seeding, uvicorn, wrk, pgbench.

Every benchmark talks to 127.0.0.1 only and bounds each load run (<= 20 s). The bench
database is dropped and recreated by :func:`create_bench_database`; the database named
``test`` is never touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from coalition.config import Settings, load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Base, Database
from coalition.ledger.service import Ledger
from coalition.members.service import enroll_member
from coalition.partners.service import onboard_merchant

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
PG_HOST = "127.0.0.1"
PG_USER = "postgres"
BENCH_DB = "coalition_bench"
PGBENCH_DB = "coalition_pgbench"
FORBIDDEN_DBS = {"test", "postgres", "template0", "template1"}
SECRET = "bench-secret-not-for-production-0123456789"
SEED_POINTS_MINOR = 10_000_000  # at 1 point per unit: 100,000 points per member, enough for every redeem run

EARN_QUERY = (
    "mutation($lid:String!,$amt:Int!,$k:String!){ earnPoints(input:{loyaltyId:$lid,purchaseAmountMinor:$amt,"
    "idempotencyKey:$k}){ transaction{ id points } member{ balance } userErrors{ code } } }"
)
REDEEM_QUERY = (
    "mutation($lid:String!,$p:Int!,$k:String!){ redeemPoints(input:{loyaltyId:$lid,points:$p,idempotencyKey:$k})"
    "{ transaction{ id } member{ balance } userErrors{ code } } }"
)


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
    )
    env.pop("COALITION_REDIS_URL", None)
    return env


def bench_settings(database_url: str) -> Settings:
    return load_settings(bench_env(database_url))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- databases


def recreate_pg_database(name: str) -> None:
    if name in FORBIDDEN_DBS:
        raise SystemExit(f"refusing to drop database {name!r}")
    subprocess.run(["dropdb", "-h", PG_HOST, "-U", PG_USER, "--if-exists", "--force", name], check=True)
    subprocess.run(["createdb", "-h", PG_HOST, "-U", PG_USER, name], check=True)


@dataclass
class Seed:
    merchant_id: int
    api_key: str
    loyalty_ids: list[str]
    ids_file: Path


async def create_schema(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def seed(db: Database, settings: Settings, *, members: int, ids_file: Path, concurrency: int = 16) -> Seed:
    """One merchant (earn rate 1 point per currency unit) and ``members`` members, each with points to redeem."""
    keys = NetworkKeys.from_settings(settings)
    onboarding = await onboard_merchant(db, name="Bench Shop", category="bench", earn_rate_points_per_unit=1)
    merchant_id = onboarding.merchant.id
    ledger = Ledger(db, settings)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with semaphore:
            enrollment = await enroll_member(db, keys, merchant_id=merchant_id, idempotency_key=f"seed-enroll-{i}")
            lid = enrollment.member.loyalty_id
            await ledger.earn(merchant_id=merchant_id, loyalty_id=lid, purchase_amount_minor=SEED_POINTS_MINOR,
                              idempotency_key=f"seed-earn-{i}")
            return lid

    started = time.perf_counter()
    loyalty_ids = list(await asyncio.gather(*(one(i) for i in range(members))))
    log(f"seeded {members} members in {time.perf_counter() - started:.1f} s")
    ids_file.write_text("\n".join(loyalty_ids) + "\n")
    return Seed(merchant_id, onboarding.api_key, loyalty_ids, ids_file)


async def setup_bench_database(database_url: str, *, members: int, ids_file: Path) -> Seed:
    settings = bench_settings(database_url)
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        await create_schema(db)
        return await seed(db, settings, members=members, ids_file=ids_file)
    finally:
        await db.dispose()


def vacuum_bench_database() -> None:
    """``VACUUM (ANALYZE)`` the bench database, as pgbench vacuums its own tables before each run.

    This machine's PostgreSQL runs with autovacuum off. Without this, every redemption's old
    lot version and every member update stays behind, and each run with ``--reuse`` measures
    a more bloated database than the one before (on 6 Dec: 789,255 dead lot versions, and the
    in-process redemption batch's median time had doubled)."""
    log(f"VACUUM (ANALYZE) {BENCH_DB}")
    subprocess.run(["psql", "-h", PG_HOST, "-U", PG_USER, "-d", BENCH_DB, "-q", "-c", "VACUUM (ANALYZE)"],
                   check=True, capture_output=True)


def pg_sessions_opened(name: str) -> int:
    """Sessions ever opened on database ``name`` (PostgreSQL 14+), read from ``postgres``.

    The difference across a load run is how many new connections the API opened during it:
    each costs a backend start and, on that connection, parsing and planning every statement
    again, so a steady load should open next to none."""
    return int(_server_value(f"SELECT sessions FROM pg_stat_database WHERE datname = '{name}'") or 0)


def pg_database_exists(name: str) -> bool:
    return _server_value(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"


def _server_value(sql: str) -> str:
    """The one value ``sql`` returns, read over the ``postgres`` database ('' for no row)."""
    return subprocess.run(
        ["psql", "-h", PG_HOST, "-U", PG_USER, "-d", "postgres", "-Atc", sql],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


async def reuse_bench_database(database_url: str, *, members: int, ids_file: Path) -> Seed | None:
    """The seeded bench database as it is, with a fresh merchant key; None when it has too few members."""
    from coalition.auth.models import Role
    from coalition.auth.service import create_api_key
    from coalition.partners.models import Merchant

    db = Database(database_url)
    try:
        async with db.read() as conn:
            merchant_id = (await conn.execute(
                text("SELECT id FROM merchants WHERE name = 'Bench Shop' ORDER BY id LIMIT 1"))).scalar()
            loyalty_ids = [r[0] for r in await conn.execute(
                text("SELECT loyalty_id FROM members WHERE enroll_idempotency_key LIKE 'seed-enroll-%' ORDER BY id"))]
        if merchant_id is None or len(loyalty_ids) < members:
            return None
        async with db.sessions.begin() as session:
            assert await session.get(Merchant, merchant_id) is not None
            api_key = await create_api_key(session, Role.MERCHANT, merchant_id=merchant_id, label="bench")
    finally:
        await db.dispose()
    loyalty_ids = loyalty_ids[:members]
    ids_file.write_text("\n".join(loyalty_ids) + "\n")
    return Seed(int(merchant_id), api_key, loyalty_ids, ids_file)


async def ensure_pg_bench(*, members: int, ids_file: Path, fresh: bool) -> Seed:
    """Reuse ``coalition_bench`` when it holds enough seeded members (unless ``fresh``), else rebuild it."""
    database_url = pg_url(BENCH_DB)
    if not fresh and pg_database_exists(BENCH_DB):
        seed = await reuse_bench_database(database_url, members=members, ids_file=ids_file)
        if seed is not None:
            log(f"reusing {BENCH_DB} ({len(seed.loyalty_ids)} seeded members)")
            return seed
    log(f"recreating {BENCH_DB} and seeding {members} members")
    recreate_pg_database(BENCH_DB)
    return await setup_bench_database(database_url, members=members, ids_file=ids_file)


async def count_entries(database_url: str, key_prefix: str) -> dict[str, int]:
    """Entries written under idempotency keys starting with ``key_prefix``, by kind."""
    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                text("SELECT kind, count(*) FROM entries WHERE idempotency_key LIKE :p GROUP BY kind"),
                {"p": key_prefix + "%"},
            )
            return {str(kind): int(n) for kind, n in rows}
    finally:
        await db.dispose()


async def check_invariants(database_url: str) -> list[str]:
    from coalition.ledger.invariants import ledger_violations

    db = Database(database_url)
    try:
        async with db.read() as conn:
            return await ledger_violations(conn)
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- pgbench


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


def drop_pg_databases() -> None:
    """Drop the two scratch databases the benchmarks create (``coalition_bench``, ``coalition_pgbench``)."""
    for name in (BENCH_DB, PGBENCH_DB):
        if name in FORBIDDEN_DBS:
            raise SystemExit(f"refusing to drop database {name!r}")
        subprocess.run(["dropdb", "-h", PG_HOST, "-U", PG_USER, "--if-exists", "--force", name], check=True)


# --------------------------------------------------------------------------- uvicorn


class Server:
    """A uvicorn process we started (and only we stop)."""

    def __init__(self, database_url: str, *, workers: int, port: int, extra_path: str | None = None,
                 nodelay: bool = False) -> None:
        """``extra_path``: a directory put on PYTHONPATH (e.g. one holding uvloop and httptools,
        which uvicorn then picks up on its own) without installing anything into the virtualenv.
        ``nodelay``: serve with bench/nodelay.py's protocol instead of the product's (since
        coalition/serving.py they are the same class)."""
        self.nodelay = nodelay
        self.port = port
        self.workers = workers
        self.cmd = [
            str(VENV_BIN / "uvicorn"), "--factory", "coalition.app:create_app", "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
        ]
        env = bench_env(database_url)
        # The protocol `coalition serve` passes (TCP_NODELAY on: see coalition/serving.py).
        self.cmd += ["--http", "nodelay:NoDelayH11Protocol" if nodelay else "coalition.serving:NoDelayHttpProtocol"]
        for path in (extra_path, str(BENCH) if nodelay else None):
            if path:
                env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(self.cmd, env=env, cwd=ROOT)
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("uvicorn did not become ready")

    def worker_pids(self) -> list[int]:
        """The processes that run the app: the main one with 1 worker, its children otherwise."""
        if self.workers == 1:
            return [self.proc.pid]
        listing = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        children = [int(pid) for pid in listing.split()]
        # multiprocessing's "spawn" children: the workers run spawn_main; skip the resource tracker.
        return [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def graphql_post(url: str, api_key: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url + "/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


# --------------------------------------------------------------------------- CPU accounting

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


def connections_per_worker(port: int, pids: list[int]) -> tuple[int, ...]:
    """How many established connections on ``port`` each of ``pids`` holds (``ss``), in that order.

    With several uvicorn workers sharing one listening socket, whichever worker wakes first
    accepts every connection waiting, so wrk's 32 connections opened at once can split 24 / 8;
    the worker holding more of them answers each more slowly (BENCHMARKS.md, finding 6).
    """
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    held = Counter(int(pid) for pid in re.findall(r"pid=(\d+)", out))
    return tuple(held.get(pid, 0) for pid in pids)


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


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[0]


# --------------------------------------------------------------------------- wrk

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


# --------------------------------------------------------------------------- profile summaries

Frame = tuple[str, str]  # (function, file)
Samples = list[tuple[list[Frame], float]]  # root-first stacks with a weight (seconds or sample counts)

LAYERS = [  # (layer, substring of the file path); the first match wins
    ("coalition.ledger", "coalition/ledger/"),
    ("coalition.graphql", "coalition/graphql/"),
    ("coalition (other)", "coalition/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("asyncpg", "/asyncpg/"),
    ("aiosqlite/sqlite3", "/aiosqlite/"),
    ("graphql-core", "/graphql/"),
    ("graphene", "/graphene/"),
    ("aiodataloader", "aiodataloader"),
    ("starlette", "/starlette/"),
    ("uvicorn+h11", "/uvicorn/"),
    ("uvicorn+h11", "/h11/"),
    ("uvicorn+h11", "/httptools/"),
    ("json", "/json/"),
    ("asyncio", "/asyncio/"),
    ("asyncio", "selectors.py"),
]


def layer_of(frame: Frame) -> str:
    _function, path = frame
    path = "/" + path.lstrip("/")  # py-spy shortens paths to "sqlalchemy/sql/base.py"
    for layer, needle in LAYERS:
        if needle in path:
            return layer
    if path in ("/", "/<built-in>") or path.startswith("/<"):
        return "C builtins"
    return "other python"


def is_idle(stack: list[Frame]) -> bool:
    """The event loop waiting for I/O (pyinstrument records it; py-spy leaves idle samples out)."""
    if not stack:
        return False
    function, path = stack[-1]
    return function.rsplit(".", 1)[-1] in ("poll", "select") and (path.endswith("selectors.py") or "built-in" in path)


def summarize_stacks(samples: Samples, *, top: int = 15, key_functions: tuple[str, ...] = ()) -> str:
    """Self time by layer, inclusive time by layer, chosen functions inclusive, and the top self-time functions."""
    busy = [(stack, w) for stack, w in samples if stack and not is_idle(stack)]
    total = sum(w for _, w in samples) or 1.0
    cpu = sum(w for _, w in busy) or 1.0
    lines = [f"weight: {total:g} (s or samples); busy (not waiting in epoll) {cpu / total:.0%} of the profiled time; "
             "percentages below are of busy time"]

    self_layer: Counter[str] = Counter()
    incl_layer: Counter[str] = Counter()
    incl_function: Counter[str] = Counter()
    self_function: Counter[str] = Counter()
    for stack, w in busy:
        leaf = stack[-1]
        # A C function's self time belongs to the nearest Python layer that called it.
        owner = next((layer_of(f) for f in reversed(stack) if layer_of(f) != "C builtins"), "C builtins")
        self_layer[owner] += w
        self_function[f"{leaf[0]} ({Path(leaf[1]).name or leaf[1]})"] += w
        for layer in {layer_of(f) for f in stack}:
            incl_layer[layer] += w
        for key in {k for k in key_functions for f in stack if key_matches(f[0], k)}:
            incl_function[key] += w

    def table(title: str, counter: Counter[str], n: int) -> None:
        lines.append(f"\n{title}")
        for name, w in counter.most_common(n):
            lines.append(f"  {w / cpu:6.1%}  {name}")

    table("self time by layer (C calls charged to their Python caller's layer):", self_layer, 20)
    table("inclusive time by layer (a sample counts once for every layer on its stack):", incl_layer, 20)
    if key_functions:
        table("inclusive time of key functions:", incl_function, len(key_functions))
    table(f"top {top} functions by self time:", self_function, top)
    return "\n".join(lines)


def summarize_pyinstrument(session: Any, *, top: int = 15) -> str:
    samples: Samples = []
    for stack, seconds in session.frame_records:
        frames = []
        for identifier in stack:
            # "function\x00file\x00line\x01cClass\x01l..." -> ("Class.function", file), as py-spy names them
            parts = identifier.split("\x00")
            attributes = parts[2].split("\x01")[1:] if len(parts) > 2 else []
            owner = next((a[1:] for a in attributes if a.startswith("c")), None)
            frames.append((f"{owner}.{parts[0]}" if owner else parts[0], parts[1] if len(parts) > 1 else ""))
        samples.append((frames, seconds))
    return summarize_stacks(samples, top=top, key_functions=LEDGER_KEY_FUNCTIONS)


# Names as the profilers spell them: py-spy says "DefiningClass.method" ("PurchaseOperations.earn"),
# pyinstrument "ClassOfSelf.method" ("Ledger.earn"); "*.method" matches the method on any class.
LEDGER_KEY_FUNCTIONS = (
    "*.earn", "*.redeem", "request_hash", "Database.transaction", "insert_entry", "*.credit", "*.debit",
    "*.add_lot", "add_postings", "open_lots", "move_lot_points", "add_allocations", "member_from_row",
    "*._compile_w_cache", "*._generate_cache_key", "greenlet_spawn", "*._prepare_and_execute",
)
HTTP_KEY_FUNCTIONS = (
    "RequestResponseCycle.run_asgi", "H11Protocol.data_received", "GraphQLEndpoint.handle",
    "create_app.<locals>.context_factory", "Authenticator.authenticate", "GraphQLEndpoint._post_params",
    "GraphQLEndpoint._run", "execute", "ledger_mutation.<locals>.mutate", "payload_of",
    "ExecutionContext.complete_value", "GraphQLEndpoint._respond", "Response.__call__",
    *LEDGER_KEY_FUNCTIONS,
)


def key_matches(name: str, key: str) -> bool:
    if key.startswith("*."):
        return "." in name and name.rsplit(".", 1)[1] == key[2:]
    return name == key


def read_pyspy_raw(path: Path) -> Samples:
    """py-spy ``--format raw`` (collapsed stacks: ``f (file:line);g (file:line) count``)."""
    samples: Samples = []
    for line in path.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text:
            continue
        frames = []
        for part in stack_text.split(";"):
            match = re.fullmatch(r"(.*) \((.*?)(?::\d+)?\)", part)
            frames.append((match.group(1), match.group(2)) if match else (part, ""))
        samples.append((frames, float(count)))
    return samples
