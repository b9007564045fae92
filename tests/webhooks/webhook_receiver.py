"""A webhook receiver for the tests: a small HTTP/1.1 server on 127.0.0.1 whose answers a test scripts.

``behave(n)`` says what the n-th request (from 0) gets: ``"ok"`` (200), ``"fail"`` (500), ``"slow"`` (no
answer for ``slow_s``: the sender's timeout fires), ``"redirect"`` (302 to another path).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: str

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    behave: Callable[[int], str] = lambda n: "ok"
    slow_s: float = 2.0
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str | None = None) -> list[Received]:
        return [r for r in self.requests if r.answer == "ok" and (path is None or r.path == path)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                answer = self.behave(len(self.requests))
                self.requests.append(Received(path, headers, body, answer))
                if answer == "slow":
                    await asyncio.sleep(self.slow_s)
                    return
                status = {"ok": "200 OK", "fail": "500 Internal Server Error", "redirect": "302 Found"}[answer]
                extra = "Location: /elsewhere\r\n" if answer == "redirect" else ""
                writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 2\r\n{extra}\r\nok".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiving(behave: Callable[[int], str] | None = None, slow_s: float = 2.0) -> AsyncIterator[Receiver]:
    receiver = Receiver(slow_s=slow_s)
    if behave is not None:
        receiver.behave = behave
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)
