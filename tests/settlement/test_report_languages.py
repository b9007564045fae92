"""Reports and statements in the reader's language: words from the catalogs, money and dates per
locale (Babel), Hebrew laid out right to left; the signed JSON the same bytes in every language.

The statement downloads choose the language as the pages do: the ``lang`` cookie, else
``Accept-Language``. The batch is the worked example's batch 1 (Bakery -96, Books +22, Cafe +27).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from report_views import view

from coalition.auth.models import Role
from coalition.auth.service import create_api_key
from coalition.settlement.report_page import report_html
from coalition.settlement.reports import report_pdf, report_png, visual_order
from coalition.settlement.statements import verify_export


async def merchant_key(db: Any, merchant_id: int) -> str:
    async with db.sessions.begin() as session:
        return await create_api_key(session, Role.MERCHANT, merchant_id=merchant_id)


@pytest.fixture
async def batch(shops: Any) -> Any:
    await shops.worked_example_activity()
    return (await shops.settle()).batch


async def get(api: Any, path: str, key: str, **headers: str) -> Any:
    return await api.client.get(path, headers={"Authorization": f"Bearer {key}", **headers})


def danish_kroner(merchants: int = 3) -> Any:
    base = view(merchants)
    first = dataclasses.replace(base.positions[0], net_minor=123456, charges_minor=-123456)
    return dataclasses.replace(base, currency="DKK", positions=[first, *base.positions[1:]], lang="da")


def test_a_danish_report_formats_money_dates_and_words_the_danish_way() -> None:
    page = report_html(danish_kroner()).replace("\xa0", " ")  # Babel puts a no-break space before "kr."
    assert '<html lang="da" dir="ltr">' in page
    assert "1.234,56 kr." in page and "-1.234,56 kr." in page and "1.234.56" not in page
    assert "Nettopositioner" in page and "Net positions" not in page
    assert "01.01.2026 00.00 til 01.02.2026 00.00 UTC" in page  # the period, as Babel writes Danish times
    assert "Nettopositioner (DKK; &gt; 0 netværket betaler butikken)" in page  # the chart's title, in the SVG


def test_a_hebrew_report_is_laid_out_right_to_left_with_hebrew_labels() -> None:
    hebrew = dataclasses.replace(view(3), lang="he")
    page = report_html(hebrew)
    assert '<html lang="he" dir="rtl">' in page
    assert "פוזיציות נטו" in page and "אימות" in page and "Net positions" not in page
    assert "text-align: start" in page and "text-align: left" not in page  # logical sides follow the direction
    # The page's charts are SVG text the browser lays out: their Hebrew stays in logical order
    # (only matplotlib's downloads need it put in visual order).
    chart = page.split('id="positions-chart"')[1]
    assert "פוזיציות נטו" in chart and visual_order("פוזיציות נטו") not in page
    assert report_pdf(hebrew).startswith(b"%PDF-") and report_png(hebrew).startswith(b"\x89PNG")


def test_right_to_left_words_are_reversed_and_numbers_keep_their_order() -> None:
    assert visual_order("plain text 1.5") == "plain text 1.5"
    assert visual_order("נטו") == "וטנ"
    assert visual_order("נטו: 1,234.56 €") == "€ 1,234.56 :וטנ"
    assert visual_order("דוח (חדש)") == "(שדח) חוד"  # brackets mirrored
    assert visual_order("בית עסק ABC") == "ABC קסע תיב"


@pytest.mark.parametrize("lang", ["he", "da", "sv", "lv"])
async def test_a_statement_downloads_in_the_browsers_language(api: Any, shops: Any, batch: Any, lang: str) -> None:
    cafe = await merchant_key(shops.db, shops.c.id)
    page = await get(api, f"/statements/{batch.id}.html", cafe, **{"Accept-Language": f"{lang},en;q=0.5"})
    assert page.status_code == 200
    assert f'lang="{lang}"' in page.text and ('dir="rtl"' in page.text) == (lang == "he")
    assert "Statement of Cafe" not in page.text and "Cafe" in page.text
    # The cookie the pages' language picker sets wins over the browser's header.
    english = await get(api, f"/statements/{batch.id}.html", cafe, **{"Accept-Language": lang, "Cookie": "lang=en"})
    assert "Statement of Cafe" in english.text and 'lang="en"' in english.text


async def test_the_signed_file_is_the_same_bytes_in_every_language(api: Any, shops: Any, batch: Any,
                                                                   settings: Any) -> None:
    cafe = await merchant_key(shops.db, shops.c.id)
    files = {lang: (await get(api, f"/statements/{batch.id}.json", cafe, **{"Accept-Language": lang})).content
             for lang in ("en", "he", "da", "sv", "lv")}
    assert len(set(files.values())) == 1
    verified = verify_export(json.loads(files["he"]), merchant_id=shops.c.id)
    assert verified is not None
    csvs = {(await get(api, f"/statements/{batch.id}.csv", cafe, **{"Accept-Language": lang})).content
            for lang in ("en", "he", "da")}
    assert len(csvs) == 1  # data for programs: column names and numbers never change with the reader
    pdfs = {lang: (await get(api, f"/statements/{batch.id}.pdf", cafe, **{"Accept-Language": lang})).content
            for lang in ("en", "he")}
    assert pdfs["en"].startswith(b"%PDF-") and pdfs["he"].startswith(b"%PDF-") and pdfs["en"] != pdfs["he"]


async def test_the_admins_batch_list_speaks_the_readers_language(api: Any, admin_key: str, batch: Any) -> None:
    page = await get(api, "/admin/settlement", admin_key, **{"Accept-Language": "he"})
    assert page.status_code == 200 and 'dir="rtl"' in page.text and "אצוות התחשבנות" in page.text
    danish = await get(api, f"/admin/settlement/{batch.id}/report.html", admin_key, **{"Accept-Language": "da"})
    assert "Afregningskørsel 1" in danish.text and "Forpligtelser brutto" in danish.text
    simulated = await get(api, f"/admin/settlement/simulate.html?batch={batch.id}&reimbursementRate=0.5", admin_key,
                          **{"Accept-Language": "sv"})
    assert simulated.status_code == 200 and "Med den gällande policyn" in simulated.text


@pytest.mark.parametrize(("lang", "words"), [("en", ["tier bonus", "reward voucher"]),
                                             ("da", ["niveaubonus", "belønningskupon"])])
def test_a_statement_names_the_program_each_line_paid_for(lang: str, words: list[str]) -> None:
    base = view(2)
    plain = base.lines[0]
    lines = [plain, plain._replace(kind="ISSUED", program="TIER"),
             plain._replace(program="VOUCHER")]
    page = report_html(dataclasses.replace(base, lines=lines, lang=lang))
    assert all(word in page for word in words)
    assert page.split('id="lines"')[1].count(" · ") == 2  # the plain line names no program
