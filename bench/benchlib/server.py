"""A uvicorn process serving the API on the bench database, and one GraphQL request to it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from benchlib.env import BENCH, ROOT, VENV_BIN, bench_env

EARN_QUERY = (
    "mutation($lid:String!,$amt:Int!,$k:String!){ earnPoints(input:{loyaltyId:$lid,purchaseAmountMinor:$amt,"
    "idempotencyKey:$k}){ transaction{ id points } member{ balance } userErrors{ code } } }"
)


REDEEM_QUERY = (
    "mutation($lid:String!,$p:Int!,$k:String!){ redeemPoints(input:{loyaltyId:$lid,points:$p,idempotencyKey:$k})"
    "{ transaction{ id } member{ balance } userErrors{ code } } }"
)


class Server:
    """The API served as ``coalition serve`` serves it, in a process we started (and only we stop)."""

    def __init__(self, database_url: str, *, workers: int, port: int, extra_path: str | None = None,
                 nodelay: bool = False, shared_socket: bool = False) -> None:
        """``extra_path``: a directory put on PYTHONPATH (e.g. one holding uvloop and httptools,
        which uvicorn then picks up on its own) without installing anything into the virtualenv.
        ``nodelay``: serve with bench/nodelay.py's protocol instead of the product's (since
        coalition/serving.py they are the same class). ``nodelay`` and ``shared_socket`` run the
        ``uvicorn`` command, whose workers share one listening socket (``coalition serve`` gives
        each worker its own: coalition/serving.py), to compare against."""
        self.nodelay = nodelay
        self.port = port
        self.workers = workers
        address = ["--workers", str(workers), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        env = bench_env(database_url)
        if nodelay or shared_socket:
            # The protocol `coalition serve` passes (TCP_NODELAY on: see coalition/serving.py).
            protocol = "nodelay:NoDelayH11Protocol" if nodelay else "coalition.serving:NoDelayHttpProtocol"
            self.cmd = [str(VENV_BIN / "uvicorn"), "--factory", "coalition.app:create_app", *address,
                        "--no-access-log", "--http", protocol]
        else:
            # `python -m` from the repository: a worktree serves its own code.
            self.cmd = [str(VENV_BIN / "python"), "-m", "coalition", "serve", *address]
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


def connections_per_worker(port: int, pids: list[int]) -> tuple[int, ...]:
    """How many established connections on ``port`` each of ``pids`` holds (``ss``), in that order.

    With several uvicorn workers sharing one listening socket, whichever worker wakes first
    accepts every connection waiting, so wrk's 32 connections opened at once can split 24 / 8;
    the worker holding more of them answers each more slowly (docs/benchmarks-journal.md, finding 6).
    ``coalition serve`` gives each worker a socket of its own; the kernel then spreads them by hash.
    """
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    held = Counter(int(pid) for pid in re.findall(r"pid=(\d+)", out))
    return tuple(held.get(pid, 0) for pid in pids)
