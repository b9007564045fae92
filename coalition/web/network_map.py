"""The network map for the admin console: ``GET /admin/network-map.png`` and ``.svg``.

Served from the newest analysis run that drew one (``coalition analyze``), to an admin API key
(``Authorization: Bearer``). ``X-Computed-At`` and ``Last-Modified`` say how fresh it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coalition.auth.models import Role
from coalition.auth.service import Authenticator
from coalition.network.store import MAP_SCOPES, InsightStore
from coalition.web.reports import credential_of

MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def network_map_endpoint(
    store: InsightStore, authenticator: Authenticator
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        fmt = request.path_params["fmt"]
        if fmt not in MAP_SCOPES:
            return JSONResponse({"error": "the map is .png or .svg"}, status_code=404)
        # Bearer, or the key as the HTTP Basic password so the admin console's link opens in a browser.
        credential = credential_of(request.headers.get("authorization", ""))
        caller = await authenticator.authenticate(credential) if credential else None
        if caller is None:
            return JSONResponse({"error": "send an admin API key: Authorization: Bearer <key>"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer, Basic realm="Coalition", charset="UTF-8"'})
        if caller.role != Role.ADMIN:
            return JSONResponse({"error": "the network map is for admins"}, status_code=403)
        found = await store.latest_blob(MAP_SCOPES[fmt])
        if found is None:
            return JSONResponse({"error": "no map yet: run `coalition analyze`"}, status_code=404)
        stored, data = found
        return Response(data, media_type=MEDIA_TYPES[fmt], headers={
            "Cache-Control": "private, max-age=60",
            "Last-Modified": format_datetime(stored.computed_at, usegmt=True),
            "X-Computed-At": stored.computed_at.isoformat(),
        })

    return endpoint
