"""Exports of a closed batch: CSV and JSON figures, the report as HTML / PDF / PNG, and who sees what.

The activity is the worked example's batch 1 (test_worked_example.py) under the default
policy (ISSUANCE, point value 1, rate 0.90): positions A -96, B +22, C +27, income 47.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from coalition.errors import InvalidInput
from coalition.ledger.models import Allocation, Entry, Lot, Posting
from coalition.settlement.errors import BatchNotFound
from coalition.settlement.exports import batch_view, export_batch
from coalition.settlement.models import SettlementBatch, SettlementLine, SettlementPosition
from coalition.settlement.statements import verify_export

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


TABLES = (Entry, Posting, Lot, Allocation, SettlementBatch, SettlementLine, SettlementPosition)


async def worked_example(s: Any) -> Any:
    await s.worked_example_activity()
    return (await s.settle()).batch


def rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode())))


async def test_batch_csv_parses_back_to_the_positions(shops: Any) -> None:
    s = shops
    batch = await worked_example(s)
    before = await s.row_counts(*TABLES)
    export = await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, fmt="csv")
    assert export.media_type.startswith("text/csv") and export.filename == f"settlement-{batch.seq}.csv"
    parsed = {r["merchant_name"]: r for r in rows(export.content)}
    assert {name: int(r["net_minor"]) for name, r in parsed.items()} == {"Bakery": -96, "Books": 22, "Cafe": 27}
    assert {name: int(r["net_minor"]) for name, r in parsed.items()} == {
        {s.a.id: "Bakery", s.b.id: "Books", s.c.id: "Cafe"}[m]: v for m, v in (await s.positions(batch.id)).items()}
    bakery = parsed["Bakery"]
    assert (int(bakery["points_issued"]), int(bakery["charges_minor"]), int(bakery["reimbursements_minor"])) == (
        100, 100, 4)
    assert {r["currency"] for r in parsed.values()} == {"EUR"}
    assert await s.row_counts(*TABLES) == before


async def test_a_statement_holds_only_the_merchants_own_lines(shops: Any) -> None:
    s = shops
    batch = await worked_example(s)
    export = await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=s.c.id, fmt="csv")
    lines = rows(export.content)
    assert all(str(s.c.id) in (r["issuer_merchant_id"], r["redeemer_merchant_id"]) for r in lines)
    assert sum(int(r["effect_minor"]) for r in lines) == 27  # C's net position
    assert [(r["kind"], r["issuer_name"], r["redeemer_name"], r["points"]) for r in lines] == [
        ("HONORED", "Bakery", "Cafe", "30")]
    books = rows((await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=s.b.id,
                                     fmt="csv")).content)
    assert sum(int(r["effect_minor"]) for r in books) == 22
    view = await batch_view(s.db, s.settings, batch.id, merchant_id=s.c.id)
    assert [p.name for p in view.positions] == ["Cafe"]
    assert (view.gross_minor, view.net_minor, view.network_income_minor) == (None, None, None)


async def test_json_is_the_signed_export(shops: Any) -> None:
    s = shops
    batch = await worked_example(s)
    whole = json.loads((await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, fmt="json")).content)
    verified = verify_export(whole, s.keys.public_key_b64)
    assert {m["merchantId"]: m["figures"]["netMinor"] for m in verified.merchants} == {
        s.a.id: -96, s.b.id: 22, s.c.id: 27}
    own = json.loads((await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=s.c.id,
                                         fmt="json")).content)
    assert [m["merchantId"] for m in verify_export(own, s.keys.public_key_b64, merchant_id=s.c.id).merchants] == [
        s.c.id]
    assert set(own) >= {"merchantStatement", "nonce", "proof"} and "merchantStatements" not in own


async def test_the_reports_show_the_commitment_a_merchant_checks(shops: Any) -> None:
    s = shops
    batch = await worked_example(s)
    own = json.loads((await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=s.c.id,
                                         fmt="json")).content)
    root = json.loads(batch.statement)["merchantRoot"]
    page = (await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=s.c.id,
                               fmt="html")).content.decode()
    assert root in page and own["nonce"] in page
    assert all(step["sha256"] in page for step in own["proof"]) and 1 <= len(own["proof"]) <= 2
    whole = (await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, fmt="html")).content.decode()
    assert root in whole and own["nonce"] not in whole  # the batch report shows no merchant's nonce
    view = await batch_view(s.db, s.settings, batch.id, merchant_id=s.b.id, keys=s.keys)
    assert view.merchant_root == root and view.commitment is not None and view.commitment.nonce != own["nonce"]


async def test_the_report_renders_the_figures(shops: Any) -> None:
    s = shops
    batch = await worked_example(s)
    before = await s.row_counts(*TABLES)
    page = (await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, fmt="html")).content.decode()
    assert page.startswith("<!doctype html>")
    for text in ("Settlement batch 1", "Bakery", "Books", "Cafe", "-€0.96", "€0.22", "0.27", "0.4269", batch.digest):
        assert text in page, text
    assert page.count("<svg") == 2 and "Points honored" in page and "Net positions" in page
    pdf = await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, fmt="pdf")
    assert pdf.content.startswith(b"%PDF-") and pdf.media_type == "application/pdf"
    png = await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=s.b.id, fmt="png")
    assert png.content.startswith(PNG_SIGNATURE) and png.filename == f"settlement-1-merchant-{s.b.id}.png"
    # The same batch renders to the same bytes (no dates in the files).
    assert (await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, fmt="pdf")).content == pdf.content
    assert await s.row_counts(*TABLES) == before


async def test_a_merchants_report_shows_no_other_position(shops: Any) -> None:
    s = shops
    batch = await worked_example(s)
    page = (await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=s.c.id,
                               fmt="html")).content.decode()
    assert "Statement of Cafe" in page and "0.27" in page and "Your side" in page
    assert "0.96" not in page and "0.22" not in page  # Bakery's and Books' positions
    assert "Network income" not in page and "Gross obligations" not in page
    assert f'data-merchant="{s.a.id}"' not in page


async def test_unknown_batches_formats_and_strangers_are_refused(shops: Any) -> None:
    s = shops
    batch = await worked_example(s)
    with pytest.raises(BatchNotFound):
        await export_batch(s.db, s.settings, s.keys, batch_id=batch.id + 1, fmt="csv")
    from coalition.partners.service import onboard_merchant

    idle = (await onboard_merchant(s.db, name="Idle", category=None, earn_rate_points_per_unit=1)).merchant
    for fmt in ("csv", "json", "html"):
        with pytest.raises(BatchNotFound):
            await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=idle.id, fmt=fmt)
    with pytest.raises(InvalidInput) as bad:
        await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, fmt="xlsx")
    assert bad.value.code == "INVALID_FORMAT"


async def test_spreadsheet_formulas_in_names_are_neutralised(shops: Any) -> None:
    s = shops
    from sqlalchemy import update

    from coalition.partners.models import Merchant

    async with s.db.transaction() as conn:
        await conn.execute(update(Merchant).where(Merchant.id == s.a.id).values(name="=HYPERLINK(1)"))
    batch = await worked_example(s)
    content = (await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, fmt="csv")).content.decode()
    assert "'=HYPERLINK(1)" in content and ",=HYPERLINK" not in content
