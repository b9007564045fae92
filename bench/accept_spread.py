"""How the API's workers share connections opened at once: one listening socket vs one per worker.

    .venv/bin/python bench/accept_spread.py [--workers 2] [--connections 32] [--bursts 15] [--port 8712]

For each serving mode, ``shared`` (the ``uvicorn`` command: its workers share one listening socket,
so whichever wakes first accepts every connection waiting) and ``per-worker`` (``coalition serve``:
a socket of each worker's own, SO_REUSEPORT; coalition/serving.py), it starts the API on the bench
database, then ``--bursts`` times opens ``--connections`` keep-alive connections at once, sends
``GET /healthz`` on each and reads the answer, notes how many each worker holds (``ss``) and
closes them. It prints every burst's split and, per mode, the mean share of the busiest worker
and the worst burst. Needs no seeded data (only the database to exist: ``bench/http_ledger.py``
makes it). Talks to 127.0.0.1 only; the load is a few hundred health checks.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import time

from benchlib.env import BENCH_DB, log, pg_url
from benchlib.server import Server, connections_per_worker

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"


def burst(port: int, pids: list[int], connections: int) -> tuple[int, ...]:
    """Open ``connections`` at once, have each answered once, and return the connections per worker."""
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(connections)]
    try:
        for client in clients:
            client.sendall(REQUEST)
        for client in clients:
            received = b""
            while not received.endswith(b"}"):  # /healthz answers a small JSON object
                chunk = client.recv(65536)
                if not chunk:
                    raise RuntimeError("the server closed a connection before answering")
                received += chunk
        return connections_per_worker(port, pids)
    finally:
        for client in clients:
            client.close()


def wait_for_workers(server: Server, workers: int, port: int, timeout_s: float = 60.0) -> list[int]:
    """The worker pids once each holds a listening socket on ``port``, and 5 s more (apps starting)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        out = subprocess.run(["ss", "-ltnpH", f"( sport = :{port} )"], capture_output=True, text=True,
                             check=True).stdout
        listening = {int(pid) for pid in re.findall(r"pid=(\d+)", out)}
        if len(pids) == workers and set(pids) <= listening:
            time.sleep(5)
            return pids
        time.sleep(0.5)
    raise RuntimeError(f"not every worker listens on port {port} after {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bursts", type=int, default=15)
    parser.add_argument("--port", type=int, default=8712)
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be 2 or more: one worker takes every connection")
    summary = []
    for mode in ("shared", "per-worker", "shared", "per-worker"):  # interleaved: the machine's load drifts
        log(f"{mode}: starting the API with {args.workers} workers")
        with Server(pg_url(BENCH_DB), workers=args.workers, port=args.port, shared_socket=mode == "shared") as server:
            pids = wait_for_workers(server, args.workers, args.port)
            splits = [burst(args.port, pids, args.connections) for _ in range(args.bursts)]
        busiest = [max(split) / max(1, sum(split)) for split in splits]
        summary.append((mode, splits, sum(busiest) / len(busiest), max(busiest)))
        print(f"{mode:10}: " + ", ".join(" / ".join(map(str, split)) for split in splits))
    print()
    print(f"{args.bursts} bursts of {args.connections} connections, {args.workers} workers; "
          "share of the busiest worker (even: 1 / workers)")
    for mode, _, mean, worst in summary:
        print(f"  {mode:10}  mean {mean:.2f}  worst {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
