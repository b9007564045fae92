"""Report rendering, pure: figures in, the HTML page with its SVG charts, PNG and PDF out."""

from __future__ import annotations

import datetime as dt

from report_views import view

from coalition.settlement.report_page import matrix_svg, positions_svg, report_html
from coalition.settlement.reports import MAX_PARTIES, BatchView, PositionRow, report_pdf, report_png


def test_charts_show_the_figures_as_text() -> None:
    small = view(3)
    svg = matrix_svg(small)
    assert svg.startswith("<svg") and "Shop 01" in svg and "Network" in svg
    bars = positions_svg(small)
    assert all(text in bars for text in ("-€1.11", "€2.22", "-€3.33"))


def test_many_partners_fold_into_others() -> None:
    crowded = view(MAX_PARTIES + 15)
    assert "others" in matrix_svg(crowded)
    assert f"{MAX_PARTIES + 15 - 2 * (MAX_PARTIES // 2)} others" in positions_svg(crowded)
    assert report_png(crowded).startswith(b"\x89PNG\r\n\x1a\n")


def test_files_are_deterministic_and_well_formed() -> None:
    small = view(4)
    pdf = report_pdf(small)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and report_pdf(small) == pdf
    assert report_png(small) == report_png(small)
    page = report_html(small, [("PDF", "report.pdf")])
    assert page == report_html(small, [("PDF", "report.pdf")])
    assert 'href="report.pdf"' in page and "0.5000" in page and "d" * 64 in page


def test_names_are_escaped_in_the_page() -> None:
    hostile = view(2)
    hostile.positions[0] = PositionRow(1, "<script>alert(1)</script>", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    page = report_html(hostile)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_an_empty_batch_renders() -> None:
    empty = BatchView("Settlement batch 1", 1, 1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                      dt.datetime(2026, 2, 1, tzinfo=dt.UTC), "EUR", 2, 0, 0, 0, "0.0000", [], [], [])
    assert "no points were honored" in matrix_svg(empty)
    assert "No merchant had activity" in report_html(empty)
    assert report_pdf(empty).startswith(b"%PDF-")
