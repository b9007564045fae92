"""Cost before work: what the GraphQL attacks of issue 13 (item 2) cost the server, and its other clients.

    python bench/abuse.py [--db sqlite|postgres] [--seconds 5] [--attackers 4] [--refusals 300]
                          [--connections 10] [--refusal-delay-ms MS] [--rate-limit N]
                          [--app-dir DIR] [--port N] [--json FILE]

1. Starts ``uvicorn --factory coalition.app:create_app`` (1 worker) on 127.0.0.1 at a spare
   port over a fresh database (SQLite in a temporary directory, or the PostgreSQL database
   ``coalition_abuse_bench``, recreated and dropped), with one merchant and its API key. The
   rate limit is raised out of the way (``--rate-limit``): every client here comes from
   127.0.0.1, and the probe alone sends more than 200 anonymous requests a second.
2. The probe: one process sends a normal query over one keep-alive connection for
   ``--seconds`` (a merchant's ``viewer`` and an anonymous ``network { name }``, alternately)
   and records each latency.
3. For each attack (300 repeats of ``network{name}``, 1,000 operations, 2,000 aliases, each
   with a random trailing comment, and 100 kB of junk), all sent anonymously:
   - the time to refuse: ``--refusals`` attack requests, one after another on each of
     ``--connections`` connections; the server's CPU time per refusal (/proc of the uvicorn
     process, its idle CPU taken out), the server's own figure (the median ``Server-Timing: refuse;dur=``
     of the answers: from the start of the request to the refusal, before the refusal
     delay), and the client's median round trip (the delay included);
   - quiet: the probe alone for ``--seconds`` (right before, as the machine's load drifts);
   - under attack: ``--attackers`` processes send that attack in a loop, each over its own
     connection, while the probe measures the normal query again for ``--seconds``.
4. Prints one table: time to refuse, and the normal query's p50 under attack beside the
   quiet p50, as a ratio. Targets (issue 13): refused in < 5 ms of server time; p50 under
   4 attackers within 2x of quiet.
   A fifth row, beyond item 2, sends documents within the anonymous budget that always
   miss the document cache (not refused: what the anonymous budget's slowdown is for).

``--app-dir`` serves another checkout (e.g. an export of ``main``) to measure the "before".
Talks to 127.0.0.1 only; every phase is bounded by ``--seconds`` (a request by a 30 s timeout).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_DATABASE = "coalition_abuse_bench"
SECRET = "bench-secret-not-for-production-0123456789"
HOST = "127.0.0.1"

MERCHANT_QUERY = "{ viewer { ... on MerchantViewer { merchant { name } } } }"
ANONYMOUS_QUERY = "{ network { name } }"


def repeated_fields() -> str:
    return "{ " + " ".join(["network{name}"] * 300) + " } #" + str(random.random())


OPERATIONS = " ".join(f"query Q{i} {{ network {{ name }} }}" for i in range(1_000))
ALIASES = "{ " + " ".join(f"a{i}: network {{ name }}" for i in range(2_000)) + " }"
JUNK = "{ " + "".join(random.choice("abc{}()[]:$@!.") for _ in range(99_000)) + " }"  # a body under 100 kB

def within_budget_misses() -> str:
    """Not refused: the most a stranger may send (10 repeats, 20 aliases), never the same text twice."""
    salt = random.randrange(1 << 30)
    return ("{ " + " ".join(f"x{salt}_{i}: network {{ name currency }}" for i in range(20)) + " "
            + " ".join(["network { name }"] * 9) + " }")


def salted(text: str) -> Callable[[], str]:
    """``text`` with a random trailing comment: never the same text twice (on ``main`` this
    defeated the document cache, which also kept refusals)."""
    return lambda: f"{text} #{random.random()}"


ATTACKS: dict[str, Callable[[], str]] = {
    "300 repeated fields + #random": repeated_fields,
    "1,000 operations + #random": salted(OPERATIONS),
    "2,000 aliases + #random": salted(ALIASES),
    "100 kB of junk": lambda: JUNK,
}
# Beyond item 2: documents within the anonymous budget that always miss the document cache.
EXTRA_ATTACKS: dict[str, Callable[[], str]] = {"within budget, always a miss": within_budget_misses}
ALL_ATTACKS = {**ATTACKS, **EXTRA_ATTACKS}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the server


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(database_url: str, app_dir: Path, rate_limit: int | None, delay_ms: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        COALITION_DATABASE_URL=database_url,
        COALITION_SECRET_KEY=SECRET,
        COALITION_HOLD_SWEEP_INTERVAL_S="0",
        PYTHONPATH=str(app_dir),
    )
    env.pop("COALITION_RATE_LIMIT_PER_S", None)
    if rate_limit is not None:
        env["COALITION_RATE_LIMIT_PER_S"] = str(rate_limit)
    env.pop("COALITION_REFUSAL_DELAY_MS", None)
    if delay_ms is not None:
        env["COALITION_REFUSAL_DELAY_MS"] = str(delay_ms)
    env.pop("COALITION_REDIS_URL", None)
    return env


def prepare_database(database_url: str, env: dict[str, str], app_dir: Path) -> str:
    """Create the schema and one merchant in a child interpreter (the served code); its API key."""
    script = (
        "import asyncio\n"
        "from coalition.config import load_settings\n"
        "from coalition.db import Database\n"
        "from coalition.models import Base\n"
        "from coalition.partners.service import onboard_merchant\n"
        "async def main():\n"
        "    settings = load_settings()\n"
        "    db = Database(settings.database_url)\n"
        "    async with db.engine.begin() as conn:\n"
        "        await conn.run_sync(Base.metadata.create_all)\n"
        "    onboarding = await onboard_merchant(db, name='Abuse Bench', category='bench',"
        " earn_rate_points_per_unit=1)\n"
        "    await db.dispose()\n"
        "    print(onboarding.api_key)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=app_dir, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


class Server:
    """The uvicorn process we started (and only we stop)."""

    def __init__(self, env: dict[str, str], app_dir: Path, port: int) -> None:
        self.port = port
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "coalition.app:create_app", "--workers", "1",
               "--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning",
               "--app-dir", str(app_dir)]
        self.proc = subprocess.Popen(cmd, env=env, cwd=app_dir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.proc.returncode}")
            try:
                status, _, _ = request(port, "GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("uvicorn did not become ready")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- clients


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes, float]:
    """One request (over ``conn`` when given, kept alive); status, body, seconds."""
    status, data, seconds, _ = request_with_headers(port, method, path, body, headers, conn)
    return status, data, seconds


def request_with_headers(port: int, method: str, path: str, body: bytes | None = None,
                         headers: dict[str, str] | None = None,
                         conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes, float, dict[str, str]]:
    own = conn is None
    connection = conn or http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, data, time.perf_counter() - started, answer_headers
    finally:
        if own:
            connection.close()


def graphql_body(query: str) -> bytes:
    return json.dumps({"query": query}).encode()


GRAPHQL_HEADERS = {"Content-Type": "application/json", "Accept": "application/graphql-response+json"}


def probe(port: int, api_key: str, seconds: float, out: Any) -> None:
    """The normal client: alternate the merchant and the anonymous query for ``seconds``."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    merchant_headers = {**GRAPHQL_HEADERS, "Authorization": f"Bearer {api_key}"}
    latencies: dict[str, list[float]] = {"merchant": [], "anonymous": []}
    failures = 0
    deadline = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < deadline:
        name, query, headers = (("merchant", MERCHANT_QUERY, merchant_headers) if turn % 2 == 0
                                else ("anonymous", ANONYMOUS_QUERY, GRAPHQL_HEADERS))
        turn += 1
        status, body, elapsed = request(port, "POST", "/graphql", graphql_body(query), headers, conn)
        if status != 200 or b'"errors"' in body:
            failures += 1
        latencies[name].append(elapsed)
    conn.close()
    out.put({"latencies": latencies, "failures": failures})


def attacker(port: int, attack: str, stop_at: float, out: Any) -> None:
    """Send ``attack`` in a loop until ``stop_at`` (monotonic); report how many and their codes."""
    make = ALL_ATTACKS[attack]
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    sent = 0
    codes: dict[str, int] = {}
    while time.monotonic() < stop_at:
        status, body, _ = request(port, "POST", "/graphql", graphql_body(make()), GRAPHQL_HEADERS, conn)
        sent += 1
        code = error_code(status, body)
        codes[code] = codes.get(code, 0) + 1
    conn.close()
    out.put({"sent": sent, "codes": codes})


def error_code(status: int, body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or [{}]
        return f"{status} {errors[0].get('extensions', {}).get('code', 'no errors')}"
    except ValueError:
        return f"{status} (not JSON)"


# --------------------------------------------------------------------------- phases


@dataclass
class Refusal:
    code: str
    server_cpu_ms: float  # CPU of the uvicorn process per refusal, its idle CPU taken out
    server_ms: float | None  # median Server-Timing "refuse" of the answers: the server's own figure
    client_p50_ms: float  # round trip at the client, the refusal delay included


def time_refusals(server: Server, attack: str, count: int, connections: int) -> Refusal:
    """``count`` refusals over ``connections`` connections, each sending one after another."""
    make = ALL_ATTACKS[attack]
    bodies = [graphql_body(make()) for _ in range(count)]
    request(server.port, "POST", "/graphql", bodies[0], GRAPHQL_HEADERS)  # warm up
    idle_started, idle_cpu = time.monotonic(), server.cpu_s()
    time.sleep(2.0)
    idle_rate = (server.cpu_s() - idle_cpu) / (time.monotonic() - idle_started)
    elapsed: list[float] = []
    timings: list[float] = []
    codes: set[str] = set()

    def send(share: list[bytes]) -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
        for body in share:
            status, answer, seconds, headers = request_with_headers(
                server.port, "POST", "/graphql", body, GRAPHQL_HEADERS, conn)
            elapsed.append(seconds)
            codes.add(error_code(status, answer))
            timing = headers.get("server-timing", "")
            if timing.startswith("refuse;dur="):
                timings.append(float(timing.split("=", 1)[1]))
        conn.close()

    before_cpu, started = server.cpu_s(), time.monotonic()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, [bodies[i::connections] for i in range(connections)]))
    cpu = server.cpu_s() - before_cpu - idle_rate * (time.monotonic() - started)
    server_ms = statistics.median(timings) if len(timings) == count else None
    return Refusal(", ".join(sorted(codes)), max(0.0, 1000 * cpu / count), server_ms,
                   1000 * statistics.median(elapsed))


def measure_normal(port: int, api_key: str, seconds: float, attack: str | None, attackers: int) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    stop_at = time.monotonic() + seconds + 1.0
    attack_procs = [ctx.Process(target=attacker, args=(port, attack, stop_at, out)) for _ in range(attackers)
                    ] if attack else []
    for proc in attack_procs:
        proc.start()
    if attack_procs:
        time.sleep(0.5)  # let the attack reach full speed first
    probe_proc = ctx.Process(target=probe, args=(port, api_key, seconds, out))
    probe_proc.start()
    results = [out.get(timeout=seconds + 60) for _ in range(1 + len(attack_procs))]
    for proc in [probe_proc, *attack_procs]:
        proc.join(timeout=60)
    [normal] = [r for r in results if "latencies" in r]
    attacks = [r for r in results if "sent" in r]
    codes: dict[str, int] = {}
    for result in attacks:
        for code, n in result["codes"].items():
            codes[code] = codes.get(code, 0) + n
    return {
        "p50_ms": {name: 1000 * statistics.median(values) for name, values in normal["latencies"].items() if values},
        "requests": {name: len(values) for name, values in normal["latencies"].items()},
        "failures": normal["failures"],
        "attack_rps": sum(r["sent"] for r in attacks) / (seconds + 0.5) if attacks else 0.0,
        "attack_codes": codes,
    }


# --------------------------------------------------------------------------- main


def recreate_pg(name: str) -> None:
    subprocess.run(["dropdb", "-h", HOST, "-U", "postgres", "--if-exists", "--force", name], check=True)
    subprocess.run(["createdb", "-h", HOST, "-U", "postgres", name], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each p50 phase (default 5)")
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--refusals", type=int, default=300, help="attack requests timed (default 300)")
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout to serve (default: this one)")
    parser.add_argument("--port", type=int, default=0, help="default: a spare port")
    parser.add_argument("--rate-limit", type=int, default=1_000_000,
                        help="COALITION_RATE_LIMIT_PER_S for the server (default 1,000,000: the probe alone "
                             "sends more than the application's 200 a second from 127.0.0.1)")
    parser.add_argument("--refusal-delay-ms", type=int, help="COALITION_REFUSAL_DELAY_MS for the server "
                        "(default: the application's, 100; 0 answers a refusal at once)")
    parser.add_argument("--connections", type=int, default=10,
                        help="connections the timed refusals are spread over, each one after another (default 10)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    app_dir = args.app_dir.resolve()
    port = args.port or spare_port()

    with tempfile.TemporaryDirectory(prefix="coalition-abuse-") as tmp:
        if args.db == "sqlite":
            database_url = f"sqlite+aiosqlite:///{tmp}/abuse.db"
        else:
            recreate_pg(PG_DATABASE)
            database_url = f"postgresql+asyncpg://postgres@{HOST}:5432/{PG_DATABASE}"
        env = server_env(database_url, app_dir, args.rate_limit, args.refusal_delay_ms)
        env["COALITION_SECRET_FILE"] = f"{tmp}/coalition.secret"
        api_key = prepare_database(database_url, env, app_dir)
        log(f"serving {app_dir} on {HOST}:{port} ({args.db})")
        server = Server(env, app_dir, port)
        try:
            report = run(server, api_key, args)
        finally:
            server.stop()
            if args.db == "postgres":
                subprocess.run(["dropdb", "-h", HOST, "-U", "postgres", "--if-exists", "--force", PG_DATABASE],
                               check=False)
    print_report(report, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def run(server: Server, api_key: str, args: argparse.Namespace) -> dict[str, Any]:
    # Warm up: the document cache, the key cache, the connection pool.
    for query, headers in ((MERCHANT_QUERY, {"Authorization": f"Bearer {api_key}"}), (ANONYMOUS_QUERY, {})):
        for _ in range(20):
            status, body, _ = request(server.port, "POST", "/graphql", graphql_body(query),
                                      {**GRAPHQL_HEADERS, **headers})
            assert status == 200 and b'"errors"' not in body, body[:300]
    measure_normal(server.port, api_key, 2.0, None, 0)  # and the probe's own first requests
    rows = []
    for attack in ALL_ATTACKS:
        log(f"{attack}: {args.refusals} refusals over {args.connections} connections")
        refusal = time_refusals(server, attack, args.refusals, args.connections)
        # Quiet right before each attack: the machine's load drifts (other work shares its cores).
        log(f"{attack}: quiet for {args.seconds:g} s, then {args.attackers} attackers for {args.seconds:g} s")
        quiet = measure_normal(server.port, api_key, args.seconds, None, 0)
        loud = measure_normal(server.port, api_key, args.seconds, attack, args.attackers)
        rows.append({"attack": attack, "refusal": refusal.__dict__, "quiet": quiet, "under_attack": loud})
    return {"attacks": rows}


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    delay = "app default" if args.refusal_delay_ms is None else f"{args.refusal_delay_ms} ms"
    print(f"{args.db}, 1 uvicorn worker, {args.attackers} anonymous attackers, {args.seconds:g} s per phase, "
          f"{args.refusals} refusals timed over {args.connections} connections, refusal delay {delay}; "
          f"app: {args.app_dir}")
    print("normal queries: a merchant's viewer (key) and an anonymous network { name }, one connection, "
          "p50 in ms quiet -> under attack (ratio)")
    print()
    print(f"{'attack':30} {'answer':24} {'server CPU':>10} {'server':>7} {'client':>7} "
          f"{'attack':>6} {'merchant p50':>23} {'anonymous p50':>22} {'probe':>6}")
    print(f"{'':30} {'':24} {'ms/refusal':>10} {'ms/req':>7} {'p50 ms':>7} {'req/s':>6} "
          f"{'quiet -> attack':>23} {'quiet -> attack':>22} {'errors':>6}")
    worst_refusal = worst_ratio = 0.0
    for row in report["attacks"]:
        refusal, quiet, loud = row["refusal"], row["quiet"]["p50_ms"], row["under_attack"]["p50_ms"]
        server_ms = f"{refusal['server_ms']:.2f}" if refusal["server_ms"] is not None else "n/a"
        cells = []
        for name in ("merchant", "anonymous"):
            ratio = loud.get(name, float("inf")) / quiet[name]
            cells.append(f"{quiet[name]:.2f} -> {loud.get(name, float('inf')):.2f} ({ratio:.2f}x)")
            if row["attack"] in ATTACKS:
                worst_ratio = max(worst_ratio, ratio)
        if row["attack"] in ATTACKS:
            worst_refusal = max(worst_refusal, refusal["server_cpu_ms"], refusal["server_ms"] or 0.0)
        print(f"{row['attack']:30} {refusal['code'][:24]:24} {refusal['server_cpu_ms']:10.2f} {server_ms:>7} "
              f"{refusal['client_p50_ms']:7.1f} {row['under_attack']['attack_rps']:6.0f} {cells[0]:>23} "
              f"{cells[1]:>22} {row['under_attack']['failures'] + row['quiet']['failures']:6d}")
    print()
    print(f"targets (the attacks of item 2; the last row is within budget, not refused: its CPU column is what "
          f"such a request costs): refused in < 5 ms of server time: worst {worst_refusal:.2f} ms "
          f"{'MET' if worst_refusal < 5 else 'NOT MET'}; p50 under {args.attackers} attackers within 2x of quiet: "
          f"worst {worst_ratio:.2f}x {'MET' if worst_ratio <= 2 else 'NOT MET'}")
    print("server CPU: the uvicorn process's CPU per request, idle taken out; server ms/req: its Server-Timing "
          "figure (request start to refusal, before the refusal delay); client p50: the round trip, delays included")


if __name__ == "__main__":
    main()
