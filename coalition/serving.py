"""How ``coalition serve`` runs uvicorn: TCP_NODELAY on every connection, and with several
workers a listening socket of each worker's own, so the kernel spreads connections evenly.

TCP_NODELAY. ``NoDelayHttpProtocol`` is uvicorn's httptools protocol when httptools is
installed (a dependency; it parses HTTP in C), else its h11 protocol. uvicorn runs on uvloop,
also a dependency, when it is importable. With ``--workers N > 1`` uvicorn before 0.55 binds
the listening socket itself as ``socket.socket(family=AF_INET)``, whose ``proto`` is 0, and
asyncio only sets TCP_NODELAY on accepted sockets whose ``proto`` is IPPROTO_TCP (0.55 binds
with IPPROTO_TCP; the pinned range admits both). uvicorn writes a response's head and body in
two ``write()`` calls, so without TCP_NODELAY Nagle's algorithm holds the body back until the
client's delayed ACK: about 40 ms added to every response (docs/benchmarks-journal.md,
finding 1). Setting the option ourselves works for any worker count and any uvicorn version.

One listening socket per worker. uvicorn's workers share the one socket its parent binds, and
whichever worker wakes first accepts every connection waiting: 32 connections opened at once
split 26 / 6 between two workers, and the busier worker answers each more slowly
(docs/benchmarks-journal.md, finding 6). On Linux each worker here listens on a socket of its
own bound to the same address with SO_REUSEPORT, and the kernel hands each new connection to
one of those sockets by a hash of its addresses, as nginx's ``listen ... reuseport`` does.
The parent keeps a :class:`PortReservation`: the same address bound with SO_REUSEPORT but
never listening, so it receives no connections, yet holds the port (``--port 0`` picks it
once for every worker) and turns a port already in use into an error before any worker
starts. uvicorn hands its sockets to each worker it spawns, including a worker restarted after
a crash, by SIGHUP or added by SIGTTIN, by pickling them; a reservation pickles as "open your
own listening socket on this address", so every worker, whenever it starts, gets its own.
A worker that stops closes its socket and the kernel spreads new connections over the rest.
Elsewhere (macOS and the BSDs accept SO_REUSEPORT but do not spread connections; Windows has
no SO_REUSEPORT) and with one worker, uvicorn binds and shares its socket as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import socket
import sys
from typing import Any, SupportsIndex

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import Server
from uvicorn.supervisors import Multiprocess

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; h11 is the fallback
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Switch Nagle's algorithm off on a TCP transport (a no-op for Unix sockets)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        # The peer may already have gone; the request then fails where uvicorn handles it.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with TCP_NODELAY set before the first byte is read."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)


if HttpToolsProtocol is not None:

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, with TCP_NODELAY set before the first byte is read."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            set_nodelay(transport)
            super().connection_made(transport)

    NoDelayHttpProtocol: type = NoDelayHttpToolsProtocol
else:  # pragma: no cover
    NoDelayHttpProtocol = NoDelayH11Protocol


logger = logging.getLogger("uvicorn.error")


def uvicorn_options(*, host: str, port: int, workers: int, log_level: str) -> dict[str, Any]:
    """The settings uvicorn runs the API with (each worker builds the app from the environment)."""
    return {"factory": True, "host": host, "port": port, "workers": workers, "log_level": log_level,
            "http": NoDelayHttpProtocol, "ws": "websockets-sansio"}


def serve(app: str, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve ``app`` (the import string of an app factory) until SIGINT or SIGTERM.

    Several workers on Linux listen on a socket each (the module docstring says why); one
    worker, or a system whose SO_REUSEPORT does not spread connections, runs uvicorn as is.
    """
    options = uvicorn_options(host=host, port=port, workers=workers, log_level=log_level)
    if workers == 1 or not reuse_port_spreads_connections():
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, **options)  # also sets uvicorn's logging up in this process
    try:
        reservation = PortReservation.reserve(host, port)
    except OSError as exc:
        logger.error("cannot listen on %s port %d: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    with reservation:
        bound_host, bound_port = reservation.getsockname()[:2]
        logger.info("Uvicorn running on http://%s:%d, a listening socket per worker (Press CTRL+C to quit)",
                    bound_host, bound_port)
        supervisor: Any
        if "target" in inspect.signature(Multiprocess).parameters:  # pragma: no cover - older uvicorn
            supervisor = Multiprocess(config, target=Server(config).run, sockets=[reservation])  # type: ignore[call-arg]
        else:
            supervisor = Multiprocess(config, sockets=[reservation])
        supervisor.run()


class PortReservation(socket.socket):
    """An address bound with SO_REUSEPORT that never listens; pickled into a worker, a socket of its own.

    The parent holds it so that the port stays taken and known while workers come and go; it
    receives no connections because it never listens. Pickling (uvicorn hands sockets to the
    workers it spawns that way) yields :func:`worker_socket` on the same address instead of a
    copy of this socket, and the worker's uvicorn starts listening on it once the app is ready.
    """

    @classmethod
    def reserve(cls, host: str, port: int) -> PortReservation:
        """Bind ``host``:``port`` (0: a free port) with SO_REUSEPORT; OSError if something listens there.

        Also when that something set SO_REUSEPORT itself, e.g. a second ``coalition serve`` on
        the port by mistake: its workers and ours would silently share the connections. A
        socket bound without SO_REUSEPORT first finds out (SO_REUSEADDR, as uvicorn binds: the
        connections of a server just stopped, in TIME_WAIT, do not count).
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if port != 0:
            with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
        sock = cls(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            _share_address(sock)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return worker_socket, (self.family, self.getsockname())


def worker_socket(family: socket.AddressFamily, address: tuple[Any, ...]) -> socket.socket:
    """A worker's own socket on the reserved address (not listening yet: uvicorn listens once the app is up).

    Runs while the worker unpickles its arguments, before uvicorn sets logging up; a refused bind
    ends the worker with uvicorn's start-up failure code, which stops the parent.
    """
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        _share_address(sock)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        logger.error("worker cannot bind %s: %s", address, exc)
        sys.exit(STARTUP_FAILURE)
    return sock


def reuse_port_spreads_connections() -> bool:
    """Whether sockets bound to one address with SO_REUSEPORT share its connections out here.

    Linux (3.9 on) does; the BSDs and macOS accept the option but give every connection to one
    socket, and Windows has no such option.
    """
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except OSError:  # a kernel older than 3.9
            return False
    return True


def _share_address(sock: socket.socket) -> None:
    # SO_REUSEADDR as uvicorn sets it (restart while old connections linger in TIME_WAIT).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
