"""The HTTP protocol ``coalition serve`` gives uvicorn, with TCP_NODELAY on every connection.

``NoDelayHttpProtocol`` is uvicorn's httptools protocol when httptools is installed (a
dependency; it parses HTTP in C), else its h11 protocol. uvicorn runs on uvloop, also a
dependency, when it is importable.

Why: with ``--workers N > 1`` uvicorn before 0.55 binds the listening socket itself as
``socket.socket(family=AF_INET)``, whose ``proto`` is 0, and asyncio only sets TCP_NODELAY
on accepted sockets whose ``proto`` is IPPROTO_TCP (0.55 binds with IPPROTO_TCP; the pinned
range admits both). uvicorn writes a response's head and body in two ``write()`` calls, so
without TCP_NODELAY Nagle's algorithm holds the body back until the client's delayed ACK:
about 40 ms added to every response (docs/benchmarks-journal.md, finding 1). Setting the option ourselves
works for any worker count and any uvicorn version.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

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
