"""One error shape for every route that is not GraphQL execution: pages, probes, refusals.

JSON clients get the GraphQL shape, ``{"errors": [{"message", "extensions": {"code"}}]}``,
so one parser reads every error the service sends. A browser (``Accept: text/html``)
opening a page gets a small HTML page with the same status, code and message instead.
A 401 challenges with ``WWW-Authenticate: Bearer``, and where HTTP Basic is accepted
(``/admin/…``, ``/statements/…``) also with ``Basic`` on a header line of its own (Chromium
ignores a Basic challenge that shares a line with Bearer), so that a browser asks for the key
(the password) and the page's links keep working. The pages people sign in to (``/console``,
``/me``, ``/login``, ``/admin``) take the session cookie and never challenge with Basic.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, Response

from coalition.graphql.errors import request_error

BASIC_CHALLENGE = 'Basic realm="Coalition", charset="UTF-8"'
BASIC_PREFIXES = ("/admin/", "/statements/")  # the routes a browser opens with an API key (HTTP Basic)
PAGE_PREFIXES = (*BASIC_PREFIXES, "/console/", "/me/")  # and the pages people sign in to
PAGE_PATHS = frozenset({"/admin", "/console", "/me", "/login", "/logout", "/language"})

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="robots" content="noindex"><title>{status} {title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}}
code{{color:#666}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p><code>{status} {code}</code></p></body>
</html>
"""
_TITLES = {400: "Bad request", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found",
           429: "Too many requests", 503: "Unavailable"}
# The page has no script and loads nothing: nothing a message could smuggle in would run.
_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def is_page(path: str) -> bool:
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


def accepts_basic(path: str) -> bool:
    return path.startswith(BASIC_PREFIXES)


def is_wallet(path: str) -> bool:
    return path == "/me" or path.startswith("/me/")


def wants_html(conn: HTTPConnection) -> bool:
    return "text/html" in conn.headers.get("accept", "").lower()


def error_response(conn: HTTPConnection, status: int, code: str, message: str,
                   headers: Mapping[str, str] | None = None, *, media_type: str | None = None) -> Response:
    """The error response for ``conn``: HTML for a browser on a page, else the JSON shape (as
    ``media_type`` when given: /graphql answers in the media type the client negotiated)."""
    page = is_page(conn.url.path)
    response: Response
    if page and wants_html(conn):
        response = HTMLResponse(_PAGE.format(status=status, title=_TITLES.get(status, "Error"), code=html.escape(code),
                                             message=html.escape(message)), status_code=status,
                                headers={"Content-Security-Policy": _PAGE_POLICY})
    else:
        response = JSONResponse(request_error(message, code), status_code=status,
                                media_type=f"{media_type}; charset=utf-8" if media_type else None)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
        if accepts_basic(conn.url.path):
            response.headers.append("WWW-Authenticate", BASIC_CHALLENGE)
    return response
