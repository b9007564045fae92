"""The report page's charts, drawn by hand as SVG: the figures, their scale, folding, languages, no matplotlib."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from report_views import view

import coalition
from coalition.settlement.report_page import (
    BLUES,
    LINES_PER_PAGE,
    LinesPage,
    ink_on,
    lines_page,
    matrix_svg,
    positions_svg,
    report_html,
)
from coalition.settlement.reports import MAX_PARTIES, OWE_COLOR, PAY_COLOR, MatrixCell, PositionRow

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    """The chart as XML: it must be well formed, whatever the names in it."""
    return ET.fromstring(svg)


def shown(chart: ET.Element) -> list[str]:
    """The words a chart writes (its ``<text>``, without the tooltips' ``<title>``)."""
    return [(text.text or "") + "".join(child.tail or "" for child in text) for text in chart.iter(f"{SVG}text")]


def test_each_matrix_cell_is_coloured_by_its_points_and_says_them() -> None:
    small = view(3)  # Shop i honored Shop j's points: i + j; the network's 7 points at Shop 01
    chart = parsed(matrix_svg(small))
    cells = {rect.find(f"{SVG}title").text: rect.get("fill")  # type: ignore[union-attr]
             for rect in chart.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None}
    assert cells["Network / Shop 01: 7"] == BLUES[-1]  # the busiest cell is the darkest
    assert cells["Shop 01 / Shop 01: 0"] == BLUES[0]  # nothing is the lightest
    assert cells["Shop 02 / Shop 03: 5"] not in (BLUES[0], BLUES[-1])
    assert len(cells) == 4 * 3  # issuers Network and three shops, by three redeemers
    written = shown(chart)
    assert {"7", "3", "4", "5"} <= set(written) and "Network" in written


def test_bars_are_as_long_as_the_nets_and_coloured_by_who_pays() -> None:
    chart = parsed(positions_svg(view(3)))  # nets -1.11, +2.22, -3.33
    bars = {rect.find(f"{SVG}title").text: rect for rect in chart.iter(f"{SVG}rect")}  # type: ignore[union-attr]
    assert set(bars) == {"Shop 01: -€1.11", "Shop 02: €2.22", "Shop 03: -€3.33"}
    width = {name.split(":")[0]: float(rect.get("width", "0")) for name, rect in bars.items()}
    assert abs(width["Shop 02"] / width["Shop 01"] - 2) < 0.01 and abs(width["Shop 03"] / width["Shop 01"] - 3) < 0.01
    assert bars["Shop 02: €2.22"].get("fill") == PAY_COLOR and bars["Shop 03: -€3.33"].get("fill") == OWE_COLOR
    labels = shown(chart)
    assert labels.index("Shop 02") < labels.index("Shop 01") < labels.index("Shop 03")  # the network pays the top most


def test_five_hundred_merchants_fold_into_the_busiest_and_others() -> None:
    merchants = 500
    positions = [PositionRow(i, f"Shop {i:03d}", 0, 0, 0, 0, 0, 0, 0, 0, (-1) ** i * i)
                 for i in range(1, merchants + 1)]
    matrix = [MatrixCell(i, f"Shop {i:03d}", i % merchants + 1, f"Shop {i % merchants + 1:03d}", i, i)
              for i in range(1, merchants + 1)]
    crowded = dataclasses.replace(view(2), positions=positions, matrix=matrix)
    heat = parsed(matrix_svg(crowded))
    cells = [rect for rect in heat.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    assert len(cells) <= (MAX_PARTIES + 1) ** 2 and "others" in shown(heat)
    bars = parsed(positions_svg(crowded))
    assert len(list(bars.iter(f"{SVG}rect"))) == 2 * (MAX_PARTIES // 2) + 1
    assert f"{merchants - 2 * (MAX_PARTIES // 2)} others" in shown(bars)
    assert float(heat.get("width", "0")) <= 800 and float(bars.get("width", "0")) <= 800  # fits a page either way


def test_names_are_escaped_and_long_ones_shortened() -> None:
    hostile = view(2)
    name = "<b>&Ruth's \"Bakery\" & Bistro of the Old Town</b>"
    hostile.positions[0] = PositionRow(1, name, 0, 0, 0, 0, 0, 0, 0, 0, 5)
    hostile.matrix[0] = hostile.matrix[0]._replace(issuer_name=name)
    for chart in (matrix_svg(hostile), positions_svg(hostile)):
        texts = shown(parsed(chart))
        titles = [title.text or "" for title in parsed(chart).iter(f"{SVG}title")]
        assert name not in texts and any(t.endswith("…") and name.startswith(t[:-1]) for t in texts)
        assert any(t.startswith(name) for t in titles)  # the whole name on hover


def test_labels_are_anchored_by_the_readers_direction() -> None:
    english, hebrew = positions_svg(view(3)), positions_svg(dataclasses.replace(view(3), lang="he"))
    assert re.search(r'text-anchor="end"[^>]*><title>Shop 01', english)  # the name ends where the bars begin
    assert re.search(r'text-anchor="start"[^>]*><title>Shop 01', hebrew)  # a right-to-left text's start is its right
    assert "פוזיציות נטו" in hebrew  # in logical order: the browser lays it out


def test_numbers_in_cells_stay_readable() -> None:
    assert ink_on(BLUES[-1]) == "#ffffff" and ink_on(BLUES[0]) == "#000000"
    assert ink_on("#777777") == "#000000" and ink_on("#555555") == "#ffffff"


def test_an_empty_report_says_so_in_both_charts() -> None:
    empty = dataclasses.replace(view(2), positions=[], matrix=[], lines=[])
    assert "no points were honored in this period" in matrix_svg(empty)
    assert "no positions in this period" in positions_svg(empty)


def test_the_page_does_not_load_matplotlib() -> None:
    """The page is drawn without matplotlib, and nothing on its path imports it (a few hundred ms)."""
    program = ("import sys\nfrom report_views import view\nimport coalition.app, coalition.web.reports\n"
               "from coalition.settlement.exports import render\nimport asyncio\n"
               "page = asyncio.run(render(view(30), 'html'))\n"
               "assert b'<svg' in page\nprint('matplotlib' in sys.modules)\n")
    root = Path(coalition.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_whole_page_renders_the_charts_inline() -> None:
    page = report_html(view(4))
    assert page.count("<svg") == 2 and 'aria-labelledby="matrix-title"' in page
    assert 'aria-labelledby="positions-title"' in page


def test_lines_are_shown_a_page_at_a_time_with_links_before_and_after() -> None:
    href = "?linesFrom={}".format
    assert lines_page(0, 1, href) == LinesPage(0, 0, 0)
    assert lines_page(LINES_PER_PAGE, 1, href) == LinesPage(0, LINES_PER_PAGE, LINES_PER_PAGE)
    total = 2 * LINES_PER_PAGE + 3
    assert lines_page(total, 1, href) == LinesPage(0, LINES_PER_PAGE, total, None, href(LINES_PER_PAGE + 1))
    middle = lines_page(total, LINES_PER_PAGE + 1, href)
    assert middle == LinesPage(LINES_PER_PAGE, 2 * LINES_PER_PAGE, total, href(1), href(2 * LINES_PER_PAGE + 1))
    last = LinesPage(2 * LINES_PER_PAGE, total, total, href(LINES_PER_PAGE + 1), None)
    assert lines_page(total, 2 * LINES_PER_PAGE + 1, href) == last
    assert lines_page(total, 10**9, href) == last  # past the end: the last page
    assert lines_page(total, 7, href).start == 6  # any line may start a page; "previous" is then line 1
    assert lines_page(total, 7, href).previous_href == href(1)


def test_a_long_report_shows_one_page_of_its_lines() -> None:
    line = view(2).lines[0]
    many = dataclasses.replace(view(2), lines=[line._replace(points=n) for n in range(1, 1201)])
    first = report_html(many).split('id="lines"')[1]
    assert first.count("<tr>") == 1 + LINES_PER_PAGE  # the header and a page of lines
    assert report_html(many).count('href="?linesFrom=501#lines-title" rel="next"') == 2  # above and below the table
    assert 'rel="prev"' not in report_html(many)
    last = report_html(many, first_line=1001, line_href=lambda n: f"?merchant=7&linesFrom={n}")
    assert last.split('id="lines"')[1].count("<tr>") == 1 + 200
    assert "Lines 1,001 to 1,200 of 1,200" in last and 'rel="next"' not in last
    assert 'href="?merchant=7&amp;linesFrom=501#lines-title" rel="prev"' in last  # hrefs are escaped like any text
