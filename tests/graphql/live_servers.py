"""API servers for the live-subscription tests: in this process (uvicorn on a spare port, in the test's
event loop) or as uvicorn subprocesses; and a graphql-transport-ws client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import uvicorn
import websockets
from starlette.applications import Starlette

PROTOCOL = "graphql-transport-ws"


def spare_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) on 127.0.0.1 in this event loop; yields its base URL."""
    port = spare_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio",
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def api_process(env: dict[str, str]) -> Iterator[str]:
    """``coalition.app:create_app`` under uvicorn in a subprocess on a spare port; yields host:port."""
    port = spare_port()
    code = ("import uvicorn; uvicorn.run('coalition.app:create_app', factory=True, host='127.0.0.1', "
            f"port={port}, ws='websockets-sansio', log_level='warning')")
    process = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("the API process did not start")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


class LiveClient:
    """A graphql-transport-ws client over one connection."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout_s: float = 5.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))  # type: ignore[no-any-return]

    async def init(self, key: str | None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"} if key else {}})
        return await self.receive()

    async def subscribe(self, sub_id: str, query: str) -> None:
        await self.send({"id": sub_id, "type": "subscribe", "payload": {"query": query}})

    async def closed_with(self, timeout_s: float = 5.0) -> int | None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout_s)
        return self.ws.close_code  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def live(address: str, *, subprotocol: bool = True) -> AsyncIterator[LiveClient]:
    protocols = [PROTOCOL] if subprotocol else None
    async with websockets.connect(f"ws://{address}/graphql", subprotocols=protocols,  # type: ignore[arg-type]
                                  open_timeout=10) as ws:
        yield LiveClient(ws)
