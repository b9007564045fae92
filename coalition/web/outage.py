"""503 for every page whose database (or Redis) cannot be reached, instead of a 500 and a traceback.

A pure ASGI middleware around the routes: an exception that :func:`coalition.availability.outage_cause`
recognises becomes ``503 {"error": {"code": "SERVICE_UNAVAILABLE", "message": ...}}`` (the pages'
error shape) with ``Retry-After``. The availability tracker has logged the outage once; nothing is
logged here. Any other exception passes on untouched. ``/graphql`` maps outages itself
(``coalition.graphql.http``); should one reach this middleware from in front of the endpoint
(an authentication middleware looking up a key), it is answered in the GraphQL error shape.

Place it before (outside) any middleware that reads the database.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coalition.availability import RETRY_AFTER_S, SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE, outage_cause


def unavailable_response(path: str = "") -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": SERVICE_UNAVAILABLE, "message": UNAVAILABLE_MESSAGE}}
    if path.startswith("/graphql"):
        body = {"errors": [{"message": UNAVAILABLE_MESSAGE, "extensions": {"code": SERVICE_UNAVAILABLE}}]}
    return JSONResponse(body, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"})


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
            await unavailable_response(scope.get("path", ""))(scope, receive, send)
