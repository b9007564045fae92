"""How ``coalition serve`` runs uvicorn (coalition.serving): TCP_NODELAY on served connections
whatever the worker count, and with several workers a listening socket each."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from scratch_servers import spare_port

from coalition import serving
from coalition.cli import cli
from coalition.serving import (
    NoDelayH11Protocol,
    NoDelayHttpProtocol,
    PortReservation,
    reuse_port_spreads_connections,
    set_nodelay,
    uvicorn_options,
)

ROOT = Path(__file__).resolve().parents[1]
needs_reuse_port = pytest.mark.skipif(not reuse_port_spreads_connections(),
                                      reason="SO_REUSEPORT does not spread connections on this system")


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


SERVE_ENV = {"COALITION_SECRET_KEY": "serving-test-secret", "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": ""}


def run_serve(tmp_path: Path, *args: str) -> None:
    env = {"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'coalition.db'}", **SERVE_ENV}
    result = CliRunner().invoke(cli, ["serve", "--port", "0", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_uses_the_nodelay_protocol_for_any_worker_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    # given a system where uvicorn binds and shares one socket (as with one worker anywhere)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(serving, "reuse_port_spreads_connections", lambda: False)
    run_serve(tmp_path, "--workers", str(workers))
    [kwargs] = calls
    assert kwargs["http"] is NoDelayHttpProtocol and kwargs["workers"] == workers


@needs_reuse_port
def test_serve_with_several_workers_gives_each_a_socket_of_its_own(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # given a supervisor that records what it was handed instead of spawning workers
    handed: list[tuple[uvicorn.Config, list[socket.socket]]] = []

    class Supervisor:
        def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
            handed.append((config, sockets))

        def run(self) -> None:
            [reservation] = handed[0][1]
            assert reservation.fileno() >= 0  # held open while the workers run

    monkeypatch.setattr(serving, "Multiprocess", Supervisor)
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("uvicorn.run shares one socket"))

    # when `coalition serve --workers 2` runs
    run_serve(tmp_path, "--workers", "2")

    # then uvicorn's supervisor gets the no-delay protocol and a port reservation, closed afterwards
    [(config, [reservation])] = handed
    assert config.http is NoDelayHttpProtocol and config.workers == 2
    assert isinstance(reservation, PortReservation) and reservation.fileno() == -1


@pytest.mark.parametrize("protocol", [NoDelayHttpProtocol, NoDelayH11Protocol])
def test_served_connection_has_tcp_nodelay(protocol: type) -> None:
    # given uvicorn configured as `coalition serve --workers 2` configures it (httptools, or the h11 fallback)
    kwargs = uvicorn_options(host="127.0.0.1", port=0, workers=2, log_level="info")
    kwargs = {k: v for k, v in kwargs.items() if k not in ("factory", "workers")} | {"http": protocol}
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


@needs_reuse_port
def test_a_reservation_holds_the_port_and_pickles_into_a_socket_of_its_own() -> None:
    # given a reservation of a free port
    with PortReservation.reserve("127.0.0.1", 0) as reservation:
        port = reservation.getsockname()[1]
        assert port != 0

        # then nothing else may take the port without SO_REUSEPORT
        with socket.socket() as intruder, pytest.raises(OSError):
            intruder.bind(("127.0.0.1", port))

        # when uvicorn hands it to two workers (it pickles the sockets it passes)
        worker_a, worker_b = (pickle.loads(pickle.dumps(reservation)) for _ in range(2))
        with worker_a, worker_b:
            # then each gets a new socket on the same address, with SO_REUSEPORT on
            for sock in (worker_a, worker_b):
                assert type(sock) is socket.socket and sock.fileno() != reservation.fileno()
                assert sock.getsockname() == ("127.0.0.1", port)
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
                sock.listen()
                sock.setblocking(False)

            # and the connections go to the listening sockets, never to the reservation
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
            accepted = Counter[str]()
            deadline = time.monotonic() + 10
            while sum(accepted.values()) < len(clients) and time.monotonic() < deadline:
                for name, sock in (("a", worker_a), ("b", worker_b)):
                    try:
                        sock.accept()[0].close()
                        accepted[name] += 1
                    except BlockingIOError:
                        time.sleep(0.001)
            for client in clients:
                client.close()
            assert sum(accepted.values()) == 64 and min(accepted["a"], accepted["b"]) >= 16, accepted


@needs_reuse_port
@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "SO_REUSEPORT"])
def test_a_port_in_use_stops_serve_before_any_worker_starts(monkeypatch: pytest.MonkeyPatch,
                                                            reuse_port: bool) -> None:
    # given a port another server listens on (with SO_REUSEPORT: e.g. a second `coalition serve`,
    # which would otherwise get half of the connections)
    monkeypatch.setattr(serving, "Multiprocess", lambda *args, **kwargs: pytest.fail("workers started"))
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # when `coalition serve --workers 2` is asked to serve on it, it stops with uvicorn's start-up failure
        with pytest.raises(SystemExit) as stopped:
            serving.serve("coalition.app:create_app", host="127.0.0.1", port=port, workers=2, log_level="info")
    assert stopped.value.code == uvicorn.config.STARTUP_FAILURE


@needs_reuse_port
def test_two_served_workers_share_the_connections_and_stop_gracefully(served_two_workers: tuple[int, int]) -> None:
    # given `coalition serve --workers 2`
    pid, port = served_two_workers

    # when 64 keep-alive clients connect and are each answered once
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(64)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        for client in clients:
            assert read_response(client).startswith(b"HTTP/1.1 200")

        # then each worker holds at least a quarter of them (the kernel hashes each to a worker's
        # socket: 64 fair coin flips leave one side below 16 about once in 40,000 runs)
        held = sockets_held(port, worker_pids(pid))
        assert sum(held.values()) == 64 and len(held) == 2 and min(held.values()) >= 16, held
    finally:
        # and SIGTERM stops every worker, closing the kept-alive connections, and frees the port
        os.kill(pid, signal.SIGTERM)
        for client in clients:
            assert client.recv(65536) == b""
            client.close()
    assert wait_for_exit(pid) == 0
    with socket.socket() as after:
        after.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the closed connections' TIME_WAIT
        after.bind(("127.0.0.1", port))


def read_response(client: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length (head and body may arrive apart)."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += client.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    [length] = [int(line.split(b":", 1)[1]) for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")]
    while len(body) < length:
        body += client.recv(65536)
    return received


@needs_reuse_port
def test_a_worker_started_again_listens_on_a_socket_of_its_own(served_two_workers: tuple[int, int],
                                                               tmp_path: Path) -> None:
    # given `coalition serve --workers 2`, when one worker dies
    pid, port = served_two_workers
    dead = worker_pids(pid)[0]
    os.kill(dead, signal.SIGKILL)

    # then uvicorn starts another, which listens on a socket of its own beside the survivor's
    wait_until_ready(SERVED[pid], port, tmp_path / "serve.log", gone=dead)

    # and new connections go to both again
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(64)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            assert read_response(client).startswith(b"HTTP/1.1 200")
        held = sockets_held(port, worker_pids(pid))
        assert dead not in held and len(held) == 2 and min(held.values()) >= 16, held
    finally:
        for client in clients:
            client.close()


SERVED: dict[int, subprocess.Popen[bytes]] = {}


@pytest.fixture
def served_two_workers(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """``coalition serve --workers 2`` on a spare port of 127.0.0.1, ready; killed if the test leaves it."""
    port = spare_port()
    env = {**os.environ, **SERVE_ENV, "PYTHONPATH": str(ROOT),
           "COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'coalition.db'}"}
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "coalition", "serve", "--workers", "2", "--port", str(port),
                                 "--log-level", "warning"], env=env, cwd=ROOT, stdout=log, stderr=log)
    SERVED[proc.pid] = proc
    try:
        wait_until_ready(proc, port, tmp_path / "serve.log")
        yield proc.pid, port
    finally:
        SERVED.pop(proc.pid)
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``coalition serve`` and its workers: SIGTERM (it stops them), else SIGKILL to each."""
    if proc.poll() is not None:
        return
    workers = worker_pids(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for worker in workers:  # a worker the parent did not stop outlives it
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)


def wait_until_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float = 90,
                     gone: int | None = None) -> None:
    """Until two workers (not ``gone``) listen on ``port`` (each listens once its app has started)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        workers = [worker for worker in worker_pids(proc.pid) if worker != gone]
        if len(workers) == 2 and len(sockets_held(port, workers, LISTENING)) == 2:
            return
        time.sleep(0.2)
    pytest.fail(f"coalition serve was not ready in {timeout_s} s:\n{log.read_text()}")


def wait_for_exit(pid: int, timeout_s: float = 30) -> int | None:
    try:
        return SERVED[pid].wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"coalition serve did not stop within {timeout_s} s of SIGTERM")


def worker_pids(pid: int) -> list[int]:
    """The uvicorn workers under ``pid``: multiprocessing's spawned children (spawn_main)."""
    listing = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [child for child in map(int, listing.split())
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


ESTABLISHED, LISTENING = "01", "0A"  # TCP states as /proc/net/tcp writes them


def sockets_held(port: int, pids: list[int], state: str = ESTABLISHED) -> Counter[int]:
    """How many TCP sockets on local ``port`` in ``state`` each of ``pids`` holds, read from /proc."""
    owner = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # a process (or its fd) gone meanwhile
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    owner[int(link[len("socket:["):-1])] = pid
    held = Counter[int]()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, inode = int(fields[1].rsplit(":", 1)[1], 16), int(fields[9])
            if local_port == port and fields[3] == state and inode in owner:
                held[owner[inode]] += 1
    return held
