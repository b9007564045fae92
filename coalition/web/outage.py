"""503 for every page whose database (or Redis) cannot be reached, instead of a 500 and a traceback.

A pure ASGI middleware around the routes: an exception that :func:`coalition.availability.outage_cause`
recognises becomes a 503 ``SERVICE_UNAVAILABLE`` in the one error shape (``coalition.web.errors``:
JSON, or a small page for a browser) with ``Retry-After``. The availability tracker has logged the
outage once; nothing is logged here. Any other exception passes on untouched. ``/graphql`` maps outages itself
(``coalition.graphql.http``); should one reach this middleware from in front of the endpoint
(an authentication middleware looking up a key), it is answered in the GraphQL error shape.

Place it before (outside) any middleware that reads the database.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coalition.availability import RETRY_AFTER_S, SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE, outage_cause
from coalition.web.errors import error_response


def unavailable_response(conn: HTTPConnection) -> Response:
    return error_response(conn, 503, SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE, {"Retry-After": str(RETRY_AFTER_S)})


class OutageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if started or outage_cause(error) is None:
                raise
            await unavailable_response(HTTPConnection(scope))(scope, receive, send)
