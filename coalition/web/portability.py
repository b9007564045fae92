"""Routes for integrations: CSV export and import, and the cards a member holds.

=============================================  =============================================================
``GET /export/members.csv``                     members: a merchant's own (enrolled or transacted with), an
``GET /export/transactions.csv``                admin's the network's (``?merchant=<id>``: one merchant's);
                                                streamed, no contact data
``GET /import/members``                         the import file's template (staff)
``POST /import/members[?dryRun=1]``             a merchant imports a CSV body (an admin adds
                                                ``?merchant=<id>``): 200 with the summary, 422 with the
                                                errors by line, 413 over ``COALITION_IMPORT_MAX_UPLOAD_BYTES``
``GET /members/{id}/qr.png`` ``qr.svg``         the member's QR code, printable card and wallet pass: for the
``GET /members/{id}/card.pdf``                  member (its token) and the merchant that enrolled it; anyone
``GET /members/{id}/pass.pkpass``               else gets 404, as for a member that does not exist
=============================================  =============================================================

The import takes the file as the request body (``Content-Type: text/csv``), not a GraphQL
mutation: a GraphQL document is capped at ``COALITION_MAX_QUERY_BYTES`` (100 kB) and held
whole in memory, where a loyalty export is megabytes. The body is streamed to a temporary
file (counting bytes, refused past the limit) and imported from it like the CLI does, so
the server's memory stays flat in the file's size. Re-posting the same body changes nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from coalition.auth.models import Role
from coalition.auth.service import Caller
from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.graphql.access import export_scope, may_hold_card
from coalition.graphql.errors import Forbidden
from coalition.members.cards import CardFace, PassSigner, card_holder, card_pdf, qr_png, qr_svg, wallet_pass
from coalition.portability.export import export_members, export_transactions
from coalition.portability.reader import COLUMNS
from coalition.portability.service import import_members, limits_from
from coalition.web.auth import caller_of
from coalition.web.errors import error_response

TEMPLATE = ",".join(COLUMNS) + "\nmember,c-1,ann@example.com,+44 7700 900123,120,,,2025-06-01,\n" \
    "earn,c-1,,,,40,4000,2025-05-01T09:30:00Z,visit\n"
CARD_TYPES = {"qr.png": "image/png", "qr.svg": "image/svg+xml", "card.pdf": "application/pdf",
              "pass.pkpass": "application/vnd.apple.pkpass"}


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _staff_scope(request: Request, keys: NetworkKeys) -> int | None:
    """None: the network (an admin without ?merchant=); else the merchant whose data is asked for."""
    caller = _caller(request)
    raw = request.query_params.get("merchant")
    named = None
    if raw is not None:
        named = keys.global_ids.decode(raw, "Merchant")
        if named is None and raw.isascii() and raw.isdigit() and len(raw) < 19:
            named = int(raw)
        if named is None and caller.role == Role.ADMIN:
            raise _Refused(400, "INVALID_ID", "merchant must be a merchant's ID or number")
        if named is None:
            named = -1  # not the caller's own: refused below
    try:
        return export_scope(caller, named)
    except Forbidden as refused:
        raise _Refused(403, "FORBIDDEN", refused.message) from None


def _caller(request: Request) -> Caller:
    caller = caller_of(request)
    if caller is None:
        raise _Refused(401, "UNAUTHENTICATED", "send an API key or member token: Authorization: Bearer <key>")
    return caller


def _guard(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except _Refused as refused:
            return error_response(request, refused.status, refused.code, refused.message)
        return response

    return endpoint


def portability_routes(settings: Settings, db: Database, keys: NetworkKeys) -> list[Route]:
    async def export(request: Request) -> Response:
        scope = _staff_scope(request, keys)
        what = "members" if request.url.path.endswith("/members.csv") else "transactions"
        stream = (export_members(db, scope) if what == "members"
                  else export_transactions(db, scope, keys.global_ids.encode))
        name = f"{what}-{'network' if scope is None else scope}.csv"
        return StreamingResponse(stream, media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"',
                                          "Cache-Control": "no-store"})

    async def import_page(request: Request) -> Response:
        if request.method == "GET":
            _staff_scope(request, keys)
            return Response(TEMPLATE, media_type="text/csv; charset=utf-8")
        merchant_id = _staff_scope(request, keys)
        if merchant_id is None:
            raise _Refused(400, "MERCHANT_REQUIRED", "an admin names the merchant: ?merchant=<id>")
        limit = settings.import_max_upload_bytes
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise _Refused(413, "FILE_TOO_LARGE", f"the file is larger than {limit:,} bytes: use `coalition import "
                           "members` or split it")
        with tempfile.TemporaryDirectory(prefix="coalition-import-") as directory:
            path = Path(directory) / "upload.csv"
            size = 0
            with path.open("wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _Refused(413, "FILE_TOO_LARGE", f"the file is larger than {limit:,} bytes: use "
                                       "`coalition import members` or split it")
                    await asyncio.to_thread(f.write, chunk)
            result = await import_members(db, keys, merchant_id=merchant_id, path=path,
                                          limits=limits_from(settings, max_bytes=limit),
                                          expiry_days=settings.points_expiry_days,
                                          dry_run=request.query_params.get("dryRun") in ("1", "true"))
        scan = result.scan
        body: dict[str, Any] = {
            "status": result.status, "members": scan.members, "historyRows": scan.earns,
            "points": scan.opening_points + scan.history_points, "postings": scan.postings,
            "membersCreated": result.members_created, "entriesCreated": result.entries_created,
            "errorCount": result.error_count,
            "errors": [{"line": e.line, "column": e.column, "code": e.code, "message": e.message}
                       for e in result.errors],
        }
        return JSONResponse(body, status_code=200 if result.ok else 422, headers={"Cache-Control": "no-store"})

    signer_cache: list[PassSigner | None] = []

    async def card(request: Request) -> Response:
        caller = _caller(request)
        kind = request.path_params["kind"]
        if kind not in CARD_TYPES:
            raise _Refused(404, "NOT_FOUND", "cards are qr.png, qr.svg, card.pdf and pass.pkpass")
        member_id = keys.global_ids.decode(request.path_params["member"], "Member")
        holder = await card_holder(db, member_id) if member_id is not None else None
        if holder is None or member_id is None or not may_hold_card(caller, member_id, holder[1]):
            # The same answer for a member this caller may not see and one that does not exist.
            raise _Refused(404, "NOT_FOUND", "no such member")
        face = CardFace(settings.network_name, holder[0], keys.qr_payload(holder[0]))
        if kind == "qr.png":
            data = await asyncio.to_thread(qr_png, face.qr_payload)
        elif kind == "qr.svg":
            data = await asyncio.to_thread(qr_svg, face.qr_payload)
        elif kind == "card.pdf":
            data = await asyncio.to_thread(card_pdf, face)
        else:
            if not signer_cache:
                signer_cache.append(PassSigner.from_files(settings.pass_certificate_file, settings.pass_key_file))
            data = await asyncio.to_thread(
                wallet_pass, face, serial=request.path_params["member"],
                pass_type_identifier=settings.pass_type_identifier, team_identifier=settings.pass_team_identifier,
                signer=signer_cache[0])
        return Response(data, media_type=CARD_TYPES[kind], headers={"Cache-Control": "private, no-store"})

    return [
        Route("/export/members.csv", _guard(export)),
        Route("/export/transactions.csv", _guard(export)),
        Route("/import/members", _guard(import_page), methods=["GET", "POST"]),
        Route("/members/{member}/{kind}", _guard(card)),
    ]
