"""Live subscriptions: memory and tasks over many WebSocket connect/subscribe/disconnect cycles.

    PYTHONPATH=. .venv/bin/python bench/ws_churn.py [--connections 10000] [--database-url URL]

Serves the app in this process (uvicorn, a fresh SQLite file unless ``--database-url``), onboards a
merchant, then opens ``--connections`` connections one after another: connection_init with the
merchant's key, two subscriptions, a ping on every other one, then a close (half wait for the pong,
half not). Prints, every 1,000 connections, the process's RSS, the asyncio tasks alive, the live
subscriptions the broker holds and the WebSocket connections the endpoint counts; they must stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import socket
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
import websockets

from coalition.app import create_app
from coalition.config import load_settings
from coalition.db import Base
from coalition.partners.service import onboard_merchant

SUBSCRIBE = "subscription { transactions { id kind points } }"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def main(args: Any) -> None:
    folder = tempfile.mkdtemp()
    url = args.database_url or f"sqlite+aiosqlite:///{folder}/churn.db"
    settings = load_settings({"COALITION_DATABASE_URL": url, "COALITION_SECRET_KEY": "churn",
                              "COALITION_SECRET_FILE": f"{folder}/secret", "COALITION_RATE_LIMIT_PER_S": "1000000",
                              "COALITION_AUTH_CACHE_S": "30"})
    app = create_app(settings)
    db = app.state.services.db
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    key = (await onboard_merchant(db, name="Churn", category=None, earn_rate_points_per_unit=1)).api_key
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio",
                                           log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)

    async def once(n: int) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
            await ws.recv()
            for sub in ("a", "b"):
                await ws.send(json.dumps({"id": sub, "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
            if n % 2:
                await ws.send(json.dumps({"type": "ping"}))
                if n % 4 == 1:
                    await ws.recv()

    print(f"{'connections':>12}{'RSS MiB':>10}{'tasks':>8}{'subscriptions':>15}{'open sockets':>14}")
    for n in range(args.connections + 1):
        if n % 1000 == 0:
            await asyncio.sleep(0.2)
            gc.collect()
            print(f"{n:>12}{rss_kib() / 1024:>10.1f}{len(asyncio.all_tasks()):>8}"
                  f"{app.state.services.live.subscribers:>15}{app.state.subscriptions.open_connections:>14}",
                  flush=True)
        if n < args.connections:
            await once(n)
    server.should_exit = True
    await serving


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args()))
