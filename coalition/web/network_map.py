"""The network map for the admin console: ``GET /admin/network-map.png`` and ``.svg``.

Served from the newest analysis run that drew one (``coalition analyze``), to an admin API key
(``Authorization: Bearer``, or the key as the HTTP Basic password so that the admin console's
link opens in a browser; :mod:`coalition.web.auth`). ``X-Computed-At`` and
``Last-Modified`` say how fresh it is. Errors have the API's shape (:mod:`coalition.web.errors`).

The title and legend are in the reader's language, chosen as for the pages (the ``lang`` cookie,
else ``Accept-Language``): the run drew the English map; another language's is drawn from the
run's stored layout the first time it is asked for and kept with the run
(:mod:`coalition.network.map_languages`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import Response

from coalition.auth.models import Role
from coalition.console.dashboard import merchant_names
from coalition.network.map_languages import MapsInLanguages
from coalition.network.mapwords import MapWords
from coalition.network.store import MAP_SCOPES, InsightStore
from coalition.web.auth import caller_of
from coalition.web.errors import error_response
from coalition.web.i18n import Formatter, formatter

MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def map_words(t: Formatter) -> MapWords:
    """The map's title and legend in ``t``'s language (in English, ``MapWords()``: the run drew those)."""
    _ = t.gettext
    return MapWords(title=_("Network map"), legend_title=_("Size: customers; lines: shared customers"),
                    community=_("Community {n}"), language=t.lang, rtl=t.direction == "rtl")


def network_map_endpoint(store: InsightStore) -> Callable[[Request], Awaitable[Response]]:
    maps = MapsInLanguages(store)

    async def endpoint(request: Request) -> Response:
        fmt = request.path_params["fmt"]
        if fmt not in MAP_SCOPES:
            return error_response(request, 404, "INVALID_FORMAT", "the map is .png or .svg")
        caller = caller_of(request)
        if caller is None:
            return error_response(request, 401, "UNAUTHENTICATED", "send an admin API key: Authorization: Bearer "
                                  "<key> (or as the password of HTTP Basic in a browser)")
        if caller.role != Role.ADMIN:
            return error_response(request, 403, "FORBIDDEN", "the network map is for admins")
        t = formatter(request)
        found = await maps.latest(fmt, map_words(t), lambda ids: merchant_names(store.db, list(ids)))
        if found is None:
            return error_response(request, 404, "NO_MAP_YET", "no map yet: run `coalition analyze`")
        stored, data = found
        return Response(data, media_type=MEDIA_TYPES[fmt], headers={
            "Cache-Control": "private, max-age=60",
            "Content-Language": t.lang,
            "Vary": "Accept-Language, Cookie",  # the words follow the reader's language
            "Last-Modified": format_datetime(stored.computed_at, usegmt=True),
            "X-Computed-At": stored.computed_at.isoformat(),
        })

    return endpoint
