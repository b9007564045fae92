"""Downloads of settlement batches and statements: thin routes over :mod:`coalition.settlement.exports`.

==========================================================  ==========================================
``GET /admin/settlement``                                    the batches, with links to their reports
``GET /admin/settlement/{batch}/report.{fmt}``               the whole batch (admin key)
``GET /admin/settlement/simulate.{fmt}?periodEnd=…&…``       what-if (admin): ``periodEnd`` or ``batch``,
                                                             and any of ``pointValueMinor``,
                                                             ``fundingModel``, ``reimbursementRate``,
                                                             ``breakageShare``; html, pdf or png
``GET /statements/{batch}.{fmt}``                            a merchant's own statement (its key); an
                                                             admin adds ``?merchant=<id>``
==========================================================  ==========================================

``fmt`` is ``html``, ``pdf``, ``png`` (in the reader's language: the ``lang`` cookie or
``Accept-Language``, as the pages choose), ``csv`` or ``json`` (the same bytes in every
language); ``batch`` is the batch's number (``SettlementBatch`` id, written the canonical
way: ``7``, not ``07``) or its GraphQL global ID. An html page shows 500 of the lines, from line
``linesFrom`` (1 when not given), with links to the pages before and after. A rendered report,
statement or closed batch's what-if (from its first line) is kept in memory for five minutes. Credentials as for the API
(:mod:`coalition.web.auth`): ``Authorization: Bearer <key>``, or the key as the password
of HTTP Basic so that a browser can open the pages (never in the URL: it would end up in
logs). Errors have the API's shape,
``{"errors": [{"message", "extensions": {"code"}}]}``, or are a small HTML page for a
browser (:mod:`coalition.web.errors`): 401 no or bad key, 403 a caller who may not see it
(a merchant asking for another's statement, a member token), 404 no such batch or no
statement for that merchant in it, 400 a bad format, merchant or ``linesFrom``, 429 too many requests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from coalition.auth.models import Role
from coalition.auth.service import Caller
from coalition.errors import DomainError, NotFound
from coalition.graphql.core.scalars import parse_aware_datetime
from coalition.ids import GlobalIds
from coalition.settlement.exports import FORMATS, MEDIA_TYPES, Export, export_batch, render
from coalition.settlement.report_page import index_html
from coalition.settlement.service import list_batches
from coalition.settlement.whatif import simulate_settlement, simulation_view
from coalition.web.auth import caller_of
from coalition.web.errors import error_response
from coalition.web.i18n import choose_language, formatter

INDEX_PAGE = 50
RENDER_CACHE_SIZE = 64  # rendered downloads kept, oldest out first
RENDER_CACHE_S = 300  # merchant names can change; the figures never do
SIMULATION_FORMATS = ("html", "pdf", "png")
SIMULATION_PARAMETERS = ("periodEnd", "batch", "pointValueMinor", "fundingModel", "reimbursementRate", "breakageShare")
HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
INDEX_POLICY = HTML_POLICY.replace("form-action 'none'", "form-action 'self'")  # the what-if form


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def __repr__(self) -> str:
        return f"HttpError(status={self.status}, code={self.code!r}, message={self.message!r})"

    def response(self, request: Request) -> Response:
        return error_response(request, self.status, self.code, self.message, self.headers)


def _ascii_int(raw: str) -> int | None:
    """``raw`` as an integer when it is ASCII digits with an optional sign; ``str.isdigit`` takes '²' too."""
    digits = raw[1:] if raw[:1] in ("-", "+") else raw
    return int(raw) if 0 < len(digits) <= 20 and digits.isascii() and digits.isdigit() else None


# A number as we write it: ASCII digits, no sign, no leading zero. "01", "+1" or an Arabic-Indic "1" name the
# same row as "1" but would make another URL (and another entry in the render cache).
_CANONICAL_NUMBER = re.compile(r"[1-9][0-9]{0,18}")


def _id(ids: GlobalIds, raw: str, type_name: str, what: str) -> int:
    if _CANONICAL_NUMBER.fullmatch(raw) and int(raw) < 2**63:
        return int(raw)
    value = ids.decode(raw, type_name)
    if value is None:
        raise HttpError(400 if what == "merchant" else 404, f"INVALID_{what.upper()}",
                        f"{raw[:60]!r} is not a {what} number (digits, no leading zero) or {type_name} ID")
    return value


def lines_from(request: Request) -> int:
    """The html report's ``linesFrom``: the number of the first line its page shows (1 when not given)."""
    raw = request.query_params.get("linesFrom", "").strip()
    if not raw:
        return 1
    if not _CANONICAL_NUMBER.fullmatch(raw):
        raise HttpError(400, "INVALID_LINES_FROM", "linesFrom must be a line number: digits, no leading zero")
    return int(raw)


def line_href(kept: dict[str, str]) -> Callable[[int], str]:
    """The link to the page of lines from line ``n``: this URL's path, ``kept`` and ``linesFrom=n``."""
    return lambda n: "?" + urlencode({**kept, "linesFrom": n})


def require_caller(request: Request) -> Caller:
    """The caller the authentication backend found; 401 for an anonymous request."""
    caller = caller_of(request)
    if caller is None:
        raise HttpError(401, "UNAUTHENTICATED", "send an API key: Authorization: Bearer <key> (or as the "
                        "password of HTTP Basic in a browser)")
    return caller


def report_routes(services: Any) -> list[Route]:
    """The routes, bound to the application's services (``db``, ``settings``, ``keys``)."""

    rendered: dict[tuple[Any, ...], tuple[float, Export]] = {}
    ids: GlobalIds = services.keys.global_ids  # batch and merchant global IDs in URLs

    async def remembered(key: tuple[Any, ...], first_line: int, make: Callable[[], Awaitable[Export]]) -> Export:
        """``make()``, or what it made for ``key`` in the last ``RENDER_CACHE_S``.

        Only a page from the first line is kept: any number may start a page of lines, and keeping
        every page a caller names would let one caller push everyone else's out."""
        if first_line != 1:
            return await make()
        cached = rendered.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        export = await make()
        if len(rendered) >= RENDER_CACHE_SIZE:
            rendered.pop(next(iter(rendered)))
        rendered[key] = (time.monotonic() + RENDER_CACHE_S, export)
        return export

    def batch_of(request: Request) -> int:
        return _id(ids, request.path_params["batch"], "SettlementBatch", "batch")

    async def send(request: Request, merchant_id: int | None, links: list[tuple[str, str]],
                   batch_id: int | None = None, kept: dict[str, str] | None = None) -> Response:
        """The export of the batch (``batch_id``, if the caller decoded it already) in the URL's format.

        ``kept``: the query the html page's links to more lines keep (an admin's ``merchant``)."""
        fmt = request.path_params["fmt"]
        if fmt not in FORMATS:
            raise HttpError(404, "INVALID_FORMAT", f"no .{fmt[:20]} export: one of {', '.join(FORMATS)}")
        if batch_id is None:
            batch_id = batch_of(request)
        # The reader's language (as the pages choose it) for html, pdf and png; the signed json
        # and the csv are the same bytes in every language.
        lang = choose_language(request, services.settings.default_language) if fmt in ("html", "pdf", "png") else "en"
        # A closed batch never changes, and a chart costs a few hundred milliseconds of CPU:
        # repeated downloads (and a key hammering one URL) come from memory for a while.
        first_line = lines_from(request) if fmt == "html" else 1
        export = await remembered(
            (batch_id, merchant_id, fmt, tuple(links), lang), first_line,
            lambda: export_batch(services.db, services.settings, services.keys, batch_id=batch_id,
                                 merchant_id=merchant_id, fmt=fmt, links=links, lang=lang, first_line=first_line,
                                 line_href=line_href(kept or {})))
        headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
        if fmt == "html":
            headers["Content-Security-Policy"] = HTML_POLICY
        else:
            headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return Response(export.content, media_type=export.media_type, headers=headers)

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HttpError as error:
                return error.response(request)
            except NotFound as error:
                return HttpError(404, error.code, error.message).response(request)
            except DomainError as error:
                return HttpError(400, error.code, error.message).response(request)

        return endpoint

    async def batch_report(request: Request) -> Response:
        caller = require_caller(request)
        if caller.role != Role.ADMIN:
            raise HttpError(403, "FORBIDDEN", "the batch report needs an admin key; a merchant gets its own "
                            "statement at /statements/<batch>.<format>")
        links = [(fmt.upper(), f"report.{fmt}") for fmt in FORMATS if fmt != "html"]
        return await send(request, None, links)

    async def statement(request: Request) -> Response:
        caller = require_caller(request)
        asked = request.query_params.get("merchant")
        wanted = None if asked is None else _id(ids, asked, "Merchant", "merchant")
        if caller.role == Role.ADMIN:
            if wanted is None:
                raise HttpError(400, "MERCHANT_REQUIRED", "an admin names the merchant: ?merchant=<id>; the whole "
                                "batch is at /admin/settlement/<batch>/report.<format>")
            merchant_id = wanted
        elif caller.role == Role.MERCHANT and caller.merchant_id is not None and caller.staff_role != "CASHIER":
            if wanted is not None and wanted != caller.merchant_id:
                raise HttpError(403, "FORBIDDEN", "a merchant sees only its own statement")
            merchant_id = caller.merchant_id
        else:
            raise HttpError(403, "FORBIDDEN", "statements need a merchant or admin API key")
        # The links (part of the render cache's key) name the batch and merchant by number,
        # however the URL named them: one entry, and one page, per statement.
        batch = batch_of(request)
        query = f"?merchant={merchant_id}" if wanted is not None else ""
        links = [(fmt.upper(), f"{batch}.{fmt}{query}") for fmt in FORMATS if fmt != "html"]
        return await send(request, merchant_id, links, batch, {"merchant": str(merchant_id)} if query else None)

    async def batch_index(request: Request) -> Response:
        caller = require_caller(request)
        if caller.role != Role.ADMIN:
            raise HttpError(403, "FORBIDDEN", "the settlement console needs an admin key")
        before = request.query_params.get("before")
        after_id = _id(ids, before, "SettlementBatch", "batch") if before else None
        batches = await list_batches(services.db, after_id=after_id, limit=INDEX_PAGE + 1)
        older = batches[INDEX_PAGE - 1].id if len(batches) > INDEX_PAGE else None
        page = index_html(batches[:INDEX_PAGE], formatter(request), older)
        return HTMLResponse(page, headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
                                           "Content-Security-Policy": INDEX_POLICY})

    async def simulation(request: Request) -> Response:
        caller = require_caller(request)
        if caller.role != Role.ADMIN:
            raise HttpError(403, "FORBIDDEN", "simulations need an admin key")
        fmt = request.path_params["fmt"]
        # An HTML form sends its empty fields too: empty means "as now".
        query = {name: value.strip() for name, value in request.query_params.items() if value.strip()}
        if fmt not in SIMULATION_FORMATS:
            raise HttpError(404, "INVALID_FORMAT", f"no .{fmt[:20]} simulation: one of {', '.join(SIMULATION_FORMATS)}")
        period_end: Any = None
        if "periodEnd" in query:
            try:
                # An unescaped "+01:00" arrives as " 01:00" (a query string's + is a space).
                period_end = parse_aware_datetime(query["periodEnd"].replace(" ", "+"))
            except GraphQLError:
                raise HttpError(400, "INVALID_PERIOD_END", "periodEnd must be ISO 8601 with an offset") from None
        point_value: Any = query.get("pointValueMinor")
        if point_value is not None:
            point_value = _ascii_int(point_value)
            if point_value is None:
                raise HttpError(400, "INVALID_POINT_VALUE", "pointValueMinor must be a whole number of minor units")
        batch = query.get("batch")
        batch_id = _id(ids, batch, "SettlementBatch", "batch") if batch else None
        lang = choose_language(request, services.settings.default_language)
        first_line = lines_from(request)
        kept = {name: query[name] for name in SIMULATION_PARAMETERS if name in query}

        async def simulated() -> Export:
            result = await simulate_settlement(
                services.db, services.settings, period_end=period_end, batch_id=batch_id,
                point_value_minor=point_value, funding_model=query.get("fundingModel"),
                reimbursement_rate=query.get("reimbursementRate"), breakage_share=query.get("breakageShare"))
            view = await simulation_view(services.db, services.settings, result, lang=lang)
            content = await render(view, fmt, first_line=first_line, line_href=line_href(kept))
            return Export(content, MEDIA_TYPES[fmt], f"what-if.{fmt}")

        # A closed batch's what-if is priced from rows that never change (as its report): reloading it
        # comes from memory for a while. A periodEnd's window still grows: priced every time.
        content = (await remembered(("what-if", batch_id, tuple(sorted(kept.items())), fmt, lang), first_line,
                                    simulated) if batch_id is not None and period_end is None
                   else await simulated()).content
        headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
        if fmt == "html":
            headers["Content-Security-Policy"] = HTML_POLICY
        else:
            headers["Content-Disposition"] = f'attachment; filename="what-if.{fmt}"'
        return Response(content, media_type=MEDIA_TYPES[fmt], headers=headers)

    return [
        Route("/admin/settlement", guarded(batch_index), methods=["GET"]),
        Route("/admin/settlement/simulate.{fmt}", guarded(simulation), methods=["GET"]),
        Route("/admin/settlement/{batch}/report.{fmt}", guarded(batch_report), methods=["GET"]),
        Route("/statements/{batch}.{fmt}", guarded(statement), methods=["GET"]),
    ]
