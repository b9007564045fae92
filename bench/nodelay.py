"""uvicorn for the bench with TCP_NODELAY set on every accepted connection (a diagnostic, not the product).

    uvicorn --factory coalition.app:create_app --workers 2 --http nodelay:NoDelayH11Protocol   (PYTHONPATH=bench)

Why: with ``--workers N > 1`` uvicorn binds the listening socket itself as
``socket.socket(family=AF_INET)``, whose ``proto`` is 0, and asyncio only sets
TCP_NODELAY on accepted sockets whose ``proto`` is IPPROTO_TCP. Starlette sends the
response head and body in two writes, so without TCP_NODELAY the body waits for the
client's delayed ACK (about 40 ms on Linux). With one worker uvicorn lets asyncio create
the socket (proto 6) and the problem does not appear. This is an h11 protocol that sets
TCP_NODELAY itself, used by ``bench/http_ledger.py --nodelay`` to show what the 2-worker
figures are without the stall.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):  # type: ignore[misc]
    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
