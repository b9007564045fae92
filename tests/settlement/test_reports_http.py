"""Report and statement downloads through the real ASGI app: formats, figures, and who may fetch what.

The batch is the worked example's batch 1 (positions Bakery -96, Books +22, Cafe +27).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from typing import Any

import pytest

from coalition.auth.models import Role
from coalition.auth.service import create_api_key
from coalition.settlement import report_page
from coalition.web import reports as reports_routes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def merchant_key(db: Any, merchant_id: int) -> str:
    async with db.sessions.begin() as session:
        return await create_api_key(session, Role.MERCHANT, merchant_id=merchant_id)


@pytest.fixture
async def batch(shops: Any) -> Any:
    await shops.worked_example_activity()
    return (await shops.settle()).batch


async def get(api: Any, path: str, key: str | None) -> Any:
    return await api.client.get(path, headers={"Authorization": f"Bearer {key}"} if key else {})


async def test_the_admin_downloads_the_batch_in_every_format(api: Any, admin_key: str, batch: Any,
                                                             keys: Any) -> None:
    page = await get(api, f"/admin/settlement/{batch.id}/report.html", admin_key)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for text in ("Bakery", "Books", "Cafe", "-€0.96", "€0.22", "0.27", batch.digest):
        assert text in page.text, text
    assert page.text.count("<svg") == 2
    pdf = await get(api, f"/admin/settlement/{batch.id}/report.pdf", admin_key)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"] == 'attachment; filename="settlement-1.pdf"'
    png = await get(api, f"/admin/settlement/{batch.id}/report.png", admin_key)
    assert png.status_code == 200 and png.content.startswith(PNG_SIGNATURE)
    positions = await get(api, f"/admin/settlement/{batch.id}/report.csv", admin_key)
    nets = {r["merchant_name"]: int(r["net_minor"]) for r in csv.DictReader(io.StringIO(positions.text))}
    assert nets == {"Bakery": -96, "Books": 22, "Cafe": 27}
    global_id = keys.global_ids.encode("SettlementBatch", batch.id)
    by_global_id = await get(api, f"/admin/settlement/{global_id}/report.json", admin_key)
    assert by_global_id.status_code == 200 and by_global_id.json()["digest"] == batch.digest


async def test_a_merchant_fetches_only_its_own_statement(api: Any, admin_key: str, shops: Any, batch: Any) -> None:
    cafe = await merchant_key(shops.db, shops.c.id)
    own = await get(api, f"/statements/{batch.id}.csv", cafe)
    assert own.status_code == 200
    lines = list(csv.DictReader(io.StringIO(own.text)))
    assert sum(int(r["effect_minor"]) for r in lines) == 27
    page = await get(api, f"/statements/{batch.id}.html", cafe)
    assert "Statement of Cafe" in page.text and "0.96" not in page.text and "0.22" not in page.text
    assert (await get(api, f"/statements/{batch.id}.json", cafe)).json()["merchantStatement"]
    # Another merchant's statement, or the whole batch: refused.
    foreign = await get(api, f"/statements/{batch.id}.csv?merchant={shops.a.id}", cafe)
    assert (foreign.status_code, foreign.json()["errors"][0]["extensions"]["code"]) == (403, "FORBIDDEN")
    whole = await get(api, f"/admin/settlement/{batch.id}/report.csv", cafe)
    assert whole.status_code == 403
    # An admin names the merchant.
    as_admin = await get(api, f"/statements/{batch.id}.csv?merchant={shops.a.id}", admin_key)
    assert sum(int(r["effect_minor"]) for r in csv.DictReader(io.StringIO(as_admin.text))) == -96
    unnamed = await get(api, f"/statements/{batch.id}.csv", admin_key)
    assert (unnamed.status_code, unnamed.json()["errors"][0]["extensions"]["code"]) == (400, "MERCHANT_REQUIRED")


async def test_refusals(api: Any, admin_key: str, shops: Any, batch: Any, make_merchant: Any) -> None:
    assert (await get(api, f"/admin/settlement/{batch.id}/report.pdf", None)).status_code == 401
    assert (await get(api, f"/admin/settlement/{batch.id}/report.pdf", "coa_nonsense")).status_code == 401
    missing = await get(api, f"/admin/settlement/{batch.id + 7}/report.csv", admin_key)
    assert (missing.status_code, missing.json()["errors"][0]["extensions"]["code"]) == (404, "BATCH_NOT_FOUND")
    assert (await get(api, f"/admin/settlement/{batch.id}/report.xlsx", admin_key)).status_code == 404
    assert (await get(api, "/admin/settlement/nonsense/report.csv", admin_key)).status_code == 404
    idle = (await make_merchant("Idle")).merchant
    no_statement = await get(api, f"/statements/{batch.id}.pdf", await merchant_key(shops.db, idle.id))
    assert no_statement.status_code == 404
    member = await shops.make_member(shops.a.id)
    assert (await get(api, f"/statements/{batch.id}.csv", member.member_token)).status_code == 403


async def test_a_browser_opens_the_console_with_basic_auth(api: Any, admin_key: str, shops: Any, batch: Any) -> None:
    asked = await get(api, "/admin/settlement", None)
    assert asked.status_code == 401 and "Basic" in asked.headers["www-authenticate"]
    basic = {"Authorization": "Basic " + base64.b64encode(f"admin:{admin_key}".encode()).decode()}
    index = await api.client.get("/admin/settlement", headers=basic)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert f'href="settlement/{batch.id}/report.pdf"' in index.text
    assert "2.53" in index.text  # gross 253 minor units
    report = await api.client.get(f"/admin/settlement/{batch.id}/report.html", headers=basic)
    assert report.status_code == 200 and 'href="report.pdf"' in report.text
    cafe = await merchant_key(shops.db, shops.c.id)
    assert (await get(api, "/admin/settlement", cafe)).status_code == 403
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:coa_wrong").decode()}
    assert (await api.client.get("/admin/settlement", headers=wrong)).status_code == 401
    assert (await api.client.get("/admin/settlement", headers={"Authorization": "Basic !!"})).status_code == 401


async def test_a_merchant_named_by_a_non_canonical_number_is_refused(
        api: Any, admin_key: str, shops: Any, batch: Any) -> None:
    canonical = await get(api, f"/statements/{batch.id}.csv?merchant={shops.c.id}", admin_key)
    assert canonical.status_code == 200
    # "03", "+3", "3.0", a superscript or an Arabic-Indic digit name merchant 3 only in a reader's eye;
    # answered, each would be another URL for the same statement and another entry in the render cache.
    for spelled in (f"0{shops.c.id}", f"00{shops.c.id}", f"+{shops.c.id}", f"{shops.c.id}.0", "\u00b3", "\u0663",
                    f" {shops.c.id}", "0"):
        refused = await get(api, f"/statements/{batch.id}.csv?merchant={spelled}", admin_key)
        assert refused.status_code == 400, spelled
        assert refused.json()["errors"][0]["extensions"]["code"] == "INVALID_MERCHANT"
    for spelled in (f"0{batch.id}", "\u00b9"):
        refused = await get(api, f"/statements/{spelled}.csv?merchant={shops.c.id}", admin_key)
        assert refused.status_code == 404 and refused.json()["errors"][0]["extensions"]["code"] == "INVALID_BATCH"
        refused = await get(api, f"/admin/settlement/{spelled}/report.csv", admin_key)
        assert refused.status_code == 404


async def test_one_statement_is_one_page_however_its_url_names_it(
        api: Any, admin_key: str, shops: Any, batch: Any, keys: Any) -> None:
    merchant = keys.global_ids.encode("Merchant", shops.c.id)
    batch_gid = keys.global_ids.encode("SettlementBatch", batch.id)
    pages = [await get(api, path, admin_key) for path in (
        f"/statements/{batch.id}.html?merchant={shops.c.id}", f"/statements/{batch.id}.html?merchant={merchant}",
        f"/statements/{batch_gid}.html?merchant={shops.c.id}")]
    assert [p.status_code for p in pages] == [200, 200, 200]
    # The links name batch and merchant by number: the same bytes (and one render-cache entry).
    assert pages[0].content == pages[1].content == pages[2].content
    assert f'href="{batch.id}.pdf?merchant={shops.c.id}"' in pages[0].text
    cafe = await merchant_key(shops.db, shops.c.id)
    own = await get(api, f"/statements/{batch.id}.html", cafe)
    assert f'href="{batch.id}.pdf"' in own.text


async def test_a_report_page_shows_its_lines_a_page_at_a_time(api: Any, admin_key: str, shops: Any, batch: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_page, "LINES_PER_PAGE", 2)
    whole = (await get(api, f"/admin/settlement/{batch.id}/report.html", admin_key)).text
    total = len(await shops.lines(batch.id))
    assert total > 4 and whole.split('id="lines"')[1].count("<tr>") == 1 + 2
    assert f"Lines 1 to 2 of {total}" in whole and 'href="?linesFrom=3#lines-title" rel="next"' in whole
    second = (await get(api, f"/admin/settlement/{batch.id}/report.html?linesFrom=3", admin_key)).text
    assert f"Lines 3 to 4 of {total}" in second and 'href="?linesFrom=1#lines-title" rel="prev"' in second
    statement = (await get(api, f"/statements/{batch.id}.html?merchant={shops.a.id}&linesFrom=3", admin_key)).text
    kept = f'href="?merchant={shops.a.id}&amp;linesFrom=1#lines-title" rel="prev"'  # the admin's merchant kept
    assert kept in statement
    for bad in ("0", "01", "-1", "x", "1e3", "2" * 30):
        refused = await get(api, f"/admin/settlement/{batch.id}/report.html?linesFrom={bad}", admin_key)
        assert (refused.status_code, refused.json()["errors"][0]["extensions"]["code"]) == (400, "INVALID_LINES_FROM")
    simulated = await get(api, f"/admin/settlement/simulate.html?batch={batch.id}&reimbursementRate=0.8"
                          f"&linesFrom=3&unknown=<b>", admin_key)
    assert simulated.status_code == 200
    previous = f'href="?batch={batch.id}&amp;reimbursementRate=0.8&amp;linesFrom=1#lines-title" rel="prev"'
    assert previous in simulated.text  # the simulation's own parameters kept, nothing else


async def test_a_closed_batchs_what_if_is_priced_once_for_a_while(api: Any, admin_key: str, batch: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    priced: list[Any] = []
    real = reports_routes.simulate_settlement

    async def counted(*args: Any, **kwargs: Any) -> Any:
        priced.append(kwargs)
        return await real(*args, **kwargs)

    monkeypatch.setattr(reports_routes, "simulate_settlement", counted)
    url = f"/admin/settlement/simulate.html?batch={batch.id}&reimbursementRate=0.8"
    first, again = (await get(api, url, admin_key)).text, (await get(api, url, admin_key)).text
    assert first == again and len(priced) == 1
    other = await get(api, f"/admin/settlement/simulate.html?batch={batch.id}&reimbursementRate=0.7", admin_key)
    assert other.status_code == 200 and other.text != first and len(priced) == 2
    refused = await get(api, f"/admin/settlement/simulate.html?batch={batch.id}&reimbursementRate=2", admin_key)
    assert refused.status_code == 400 and len(priced) == 3  # a refusal is not kept
    ahead = (batch.period_end + dt.timedelta(days=1)).isoformat().replace("+", "%2B")
    for _ in range(2):  # the next period's activity still grows: priced every time
        assert (await get(api, f"/admin/settlement/simulate.html?periodEnd={ahead}", admin_key)).status_code == 200
    assert len(priced) == 5


async def test_only_a_reports_first_page_is_kept(api: Any, admin_key: str, batch: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller naming line after line cannot fill the render cache and push the others' pages out."""
    made: list[int] = []
    real = reports_routes.export_batch

    async def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs["first_line"])
        return await real(*args, **kwargs)

    monkeypatch.setattr(reports_routes, "export_batch", counted)
    for first in (1, 1, 2, 2, 3):
        page = await get(api, f"/admin/settlement/{batch.id}/report.html?linesFrom={first}", admin_key)
        assert page.status_code == 200
    assert made == [1, 2, 2, 3]
