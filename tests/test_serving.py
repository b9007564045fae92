"""TCP_NODELAY on served connections (coalition.serving), whatever the worker count."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from coalition.cli import cli
from coalition.serving import NoDelayH11Protocol, NoDelayHttpProtocol, set_nodelay


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def serve_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> dict[str, Any]:
    """The keyword arguments ``coalition serve --workers N`` hands to uvicorn.run."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    env = {"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'coalition.db'}",
           "COALITION_SECRET_KEY": "serving-test-secret", "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": ""}
    result = CliRunner().invoke(cli, ["serve", "--port", "0", "--workers", str(workers)], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [kwargs] = calls
    return kwargs


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_uses_the_nodelay_protocol_for_any_worker_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    assert serve_kwargs(tmp_path, monkeypatch, workers)["http"] is NoDelayHttpProtocol


@pytest.mark.parametrize("protocol", [NoDelayHttpProtocol, NoDelayH11Protocol])
def test_served_connection_has_tcp_nodelay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: type) -> None:
    # given uvicorn configured as `coalition serve --workers 2` configures it (httptools, or the h11 fallback)
    kwargs = serve_kwargs(tmp_path, monkeypatch, workers=2)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("factory", "workers")} | {"host": "127.0.0.1",
                                                                                      "http": protocol}
    asyncio.run(serve_one_request(uvicorn.Config(hello, **kwargs)))


async def serve_one_request(config: uvicorn.Config) -> None:
    # on a socket bound the way uvicorn before 0.55 bound it for several workers (proto 0: asyncio
    # leaves Nagle on), which the pinned range still admits
    sock = socket.socket(family=socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    assert sock.proto == 0
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async def started() -> None:
            while not server.started:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(started(), timeout=10)
        port = sock.getsockname()[1]

        # when a client sends a request
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.readuntil(b"hello"), timeout=10)

        # then it is served, and the server's end of the connection has TCP_NODELAY on
        assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"hello")
        [connection] = server.server_state.connections
        server_sock = connection.transport.get_extra_info("socket")
        assert server_sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        writer.close()
        await writer.wait_closed()
    finally:
        server.should_exit = True
        await task
        sock.close()


def test_set_nodelay_switches_nagle_off_on_a_real_tcp_socket() -> None:
    # given an accepted TCP socket with Nagle on, behind a transport
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)

        class Transport(asyncio.Transport):
            def get_extra_info(self, name: str, default: Any = None) -> Any:
                return accepted if name == "socket" else default

        # when the protocol's hook runs
        set_nodelay(Transport())

        # then Nagle is off
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        for s in (client, accepted, listener):
            s.close()
