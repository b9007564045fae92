"""Exports of a closed batch: CSV, JSON, and the report as HTML, PDF or PNG. Reads only.

Two views, one function (:func:`export_batch`):

- the **batch** (admins): every merchant's position, every line, the whole matrix and the
  batch totals;
- one merchant's **statement** (that merchant, or an admin naming it): its own position,
  the lines where it is issuer or redeemer, and nothing else. Batch totals are left out of
  the report, which stays about the merchant's own figures; the network-level totals are in
  the signed batch statement and on the contract's ``SettlementBatch`` anyway (see
  :mod:`coalition.settlement.statements` for what a merchant learns of the others: the
  aggregates and the number of statements, nothing per merchant).

Formats:

==========  ==================================================================================
``csv``     batch: one row per merchant position; statement: one row per line, with
            ``effect_minor``, the line's signed effect on the merchant (they sum to its net
            position). Money in integer minor units with a ``currency`` column; text cells
            that a spreadsheet would run as a formula get a leading ``'``.
``json``    the signed export (:func:`coalition.settlement.service.export_statement`):
            verifiable offline with the network's public key; a merchant's holds its own
            statement, its nonce and its inclusion proof (:mod:`coalition.settlement.statements`).
``html``    the report page (:mod:`coalition.settlement.report_page`): summary, positions table,
            matrix heat map and net positions bar chart as inline SVG, the lines, the digest
            and signature, the Merkle root and
            (a merchant's statement) its nonce and inclusion proof.
``pdf``     the report on one page (for e-mail); ``png`` the same as an image.
==========  ==================================================================================
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import InvalidInput
from coalition.i18n import Formatter
from coalition.partners.models import Merchant
from coalition.settlement import report_page, reports
from coalition.settlement.errors import BatchNotFound
from coalition.settlement.models import LineKind
from coalition.settlement.reports import BatchView, LineRow, MatrixCell, PositionRow
from coalition.settlement.service import (
    batch_lines,
    batch_positions,
    export_statement,
    export_text,
    get_batch,
    merchant_root_of,
    netting_ratio_of,
    statement_commitments,
    statement_version_of,
)

FORMATS = ("csv", "json", "html", "pdf", "png")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "html": "text/html; charset=utf-8",
               "pdf": "application/pdf", "png": "image/png"}
NETWORK_NAME = reports.NETWORK_LABEL

POSITION_COLUMNS = ("batch_id", "batch_seq", "period_start", "period_end", "currency", "merchant_id", "merchant_name",
                    "points_issued", "points_honored", "points_reversed", "points_expired", "charges_minor",
                    "reimbursements_minor", "breakage_minor", "adjustments_minor", "net_minor")
LINE_COLUMNS = ("batch_id", "batch_seq", "currency", "kind", "issuer_merchant_id", "issuer_name",
                "redeemer_merchant_id", "redeemer_name", "points", "issuer_minor", "redeemer_minor", "effect_minor",
                "original_entry_id", "original_batch_id", "program")


@dataclass(frozen=True)
class Export:
    content: bytes
    media_type: str
    filename: str


async def party_names(db: Database, ids: set[int], t: Formatter) -> dict[int | None, str]:
    """A report's parties by id: each merchant's name, the network's under None, and "merchant 7" (in
    ``t``'s language) for an id without a row. One dictionary: a dense report names 5,000 parties
    ten thousand times."""
    async with db.read() as conn:
        rows = await conn.execute(select(Merchant.id, Merchant.name).where(Merchant.id.in_(ids)))
        names: dict[int | None, str] = {r.id: r.name for r in rows}
    names[None] = t.gettext(NETWORK_NAME)
    for missing in ids - names.keys():
        names[missing] = t.gettext("merchant {id}", id=missing)
    return names


async def batch_view(db: Database, settings: Settings, batch_id: int, *, merchant_id: int | None = None,
                     keys: NetworkKeys | None = None, lang: str = "en") -> BatchView:
    """The batch as plain figures, or only ``merchant_id``'s statement, to be read in ``lang``. Raises BatchNotFound.

    With ``keys``, a merchant's statement in a version-2 batch also shows its nonce and
    inclusion proof (the report's verification section).
    """
    batch = await get_batch(db, batch_id)
    positions = await batch_positions(db, batch_id, merchant_id=merchant_id)
    if merchant_id is not None and not positions:
        raise BatchNotFound(f"merchant {merchant_id} has no statement in batch {batch_id}", field="merchantId")
    lines = await batch_lines(db, batch_id, merchant_id=merchant_id)
    t = Formatter(lang, settings.currency, settings.currency_exponent)
    name = await party_names(db, {p.merchant_id for p in positions} | {
        m for line in lines for m in (line.issuer_merchant_id, line.redeemer_merchant_id) if m}, t)

    line_rows = [LineRow(kind=line.kind.value, issuer_id=line.issuer_merchant_id,
                         issuer_name=name[line.issuer_merchant_id], redeemer_id=line.redeemer_merchant_id,
                         redeemer_name=name[line.redeemer_merchant_id] if line.redeemer_merchant_id else "",
                         points=line.points, issuer_minor=line.issuer_minor, redeemer_minor=line.redeemer_minor,
                         original_entry_id=line.original_entry_id, original_batch_id=line.original_batch_id,
                         program=line.program.value if line.program is not None else "")
                 for line in lines]
    cells: dict[tuple[int | None, int], list[int]] = {}
    for line in lines:
        if line.kind == LineKind.HONORED and line.redeemer_merchant_id is not None:
            cell = cells.setdefault((line.issuer_merchant_id, line.redeemer_merchant_id), [0, 0])
            cell[0] += line.points
            cell[1] += line.redeemer_minor
    matrix = [MatrixCell(issuer, name[issuer], redeemer, name[redeemer], points, reimbursed)
              for (issuer, redeemer), (points, reimbursed) in sorted(cells.items(), key=lambda kv: (kv[0][0] or 0,
                                                                                                       kv[0][1]))]
    position_rows = [PositionRow(
        merchant_id=p.merchant_id, name=name[p.merchant_id], points_issued=p.points_issued,
        points_honored=p.points_honored, points_reversed=p.points_reversed, points_expired=p.points_expired,
        charges_minor=p.charges_minor, reimbursements_minor=p.reimbursements_minor, breakage_minor=p.breakage_minor,
        adjustments_minor=p.adjustments_minor, net_minor=p.net_minor) for p in positions]
    whole = merchant_id is None
    commitment = None
    if not whole and keys is not None and statement_version_of(batch) == 2:
        (commitment,) = await statement_commitments(db, keys, batch_id, positions)
    title = (t.gettext("Settlement batch {seq}", seq=batch.seq) if whole
             else t.gettext("Statement of {name}, settlement batch {seq}", name=name[merchant_id], seq=batch.seq))
    return BatchView(
        title=title, batch_id=batch.id, seq=batch.seq, period_start=batch.period_start, period_end=batch.period_end,
        currency=settings.currency, currency_exponent=settings.currency_exponent,
        gross_minor=batch.gross_minor if whole else None, net_minor=batch.net_minor if whole else None,
        network_income_minor=batch.network_income_minor if whole else None,
        netting_ratio=netting_ratio_of(batch) if whole else None,
        positions=position_rows, lines=line_rows, matrix=matrix, digest=batch.digest, signature=batch.signature,
        merchant_id=merchant_id, merchant_root=merchant_root_of(batch), commitment=commitment, lang=lang)


def _text(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _iso(value: Any) -> str:
    return str(value.isoformat())


def positions_csv(view: BatchView) -> str:
    """One row per merchant position (the batch export)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(POSITION_COLUMNS)
    for p in view.positions:
        writer.writerow([view.batch_id, view.seq, _iso(view.period_start), _iso(view.period_end), view.currency,
                         p.merchant_id, _text(p.name), p.points_issued, p.points_honored, p.points_reversed,
                         p.points_expired, p.charges_minor, p.reimbursements_minor, p.breakage_minor,
                         p.adjustments_minor, p.net_minor])
    return out.getvalue()


def statement_csv(view: BatchView) -> str:
    """One row per line; ``effect_minor`` is the line's effect on ``view.merchant_id`` (empty in a batch view)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LINE_COLUMNS)
    for line in view.lines:
        effect: int | str = ""
        if view.merchant_id is not None:
            effect = ((line.issuer_minor if line.issuer_id == view.merchant_id else 0)
                      + (line.redeemer_minor if line.redeemer_id == view.merchant_id else 0))
        writer.writerow([view.batch_id, view.seq, view.currency, line.kind, line.issuer_id or "",
                         _text(line.issuer_name), line.redeemer_id or "", _text(line.redeemer_name), line.points,
                         line.issuer_minor, line.redeemer_minor, effect, line.original_entry_id or "",
                         line.original_batch_id or "", line.program])
    return out.getvalue()


def filename(batch_seq: int, merchant_id: int | None, fmt: str) -> str:
    who = f"-merchant-{merchant_id}" if merchant_id is not None else ""
    return f"settlement-{batch_seq}{who}.{fmt}"


async def export_batch(db: Database, settings: Settings, keys: NetworkKeys, *, batch_id: int,
                       merchant_id: int | None = None, fmt: str, links: list[tuple[str, str]] | None = None,
                       lang: str = "en", first_line: int = 1, line_href: Callable[[int], str] | None = None) -> Export:
    """The batch (``merchant_id`` None) or one merchant's statement in ``fmt``; see the module docstring.

    ``lang`` is the reader's language for html, pdf and png. The signed json and the csv are
    data for programs, the same bytes in every language."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}", code="INVALID_FORMAT",
                           field="format")
    if fmt == "json":
        batch = await get_batch(db, batch_id)
        document = await export_statement(db, keys, batch_id, merchant_id)
        return Export(export_text(document).encode(), MEDIA_TYPES[fmt], filename(batch.seq, merchant_id, fmt))
    view = await batch_view(db, settings, batch_id, merchant_id=merchant_id, keys=keys,
                            lang="en" if fmt == "csv" else lang)
    assert view.seq is not None
    return Export(await render(view, fmt, links, first_line, line_href), MEDIA_TYPES[fmt],
                  filename(view.seq, merchant_id, fmt))


async def render(view: BatchView, fmt: str, links: list[tuple[str, str]] | None = None, first_line: int = 1,
                 line_href: Callable[[int], str] | None = None) -> bytes:
    """``view`` as csv (positions for a batch, lines for a statement), html (the page of lines from
    ``first_line``, :func:`~coalition.settlement.report_page.report_html`), pdf or png."""
    if fmt == "csv":
        return (positions_csv(view) if view.merchant_id is None else statement_csv(view)).encode()
    # Off the event loop: a big batch's page has thousands of lines, and matplotlib (pdf, png)
    # takes a few hundred milliseconds.
    if fmt == "html":
        return (await asyncio.to_thread(report_page.report_html, view, links, first_line, line_href)).encode()
    if fmt == "pdf":
        return await asyncio.to_thread(reports.report_pdf, view)
    if fmt == "png":
        return await asyncio.to_thread(reports.report_png, view)
    raise InvalidInput(f"format must be one of csv, html, pdf, png; got {fmt!r}", code="INVALID_FORMAT",
                       field="format")
