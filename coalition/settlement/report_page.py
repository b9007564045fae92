"""The settlement report as one HTML page, its two charts drawn as inline SVG by hand.

The page (a batch report, a merchant's statement or a what-if simulation) is read in a
browser, often just after a batch closes, so it must render in milliseconds every time:
matplotlib (which draws the PDF and PNG downloads, :mod:`coalition.settlement.reports`) takes
a few hundred to import and draw, so it is not used, nor imported, here. The charts are
plain SVG strings (no script, no library) like the console's (:mod:`coalition.web.charts`):

- the **matrix**: a heat map of points honored, issuer (rows) x redeemer (columns), the
  numbers in the cells while they fit, each cell's figure on hover;
- the **net positions**: a horizontal bar per merchant, green when the network pays it, red
  when it pays the network, the amount at the bar's end.

Both fold a network past ``MAX_PARTIES`` partners into "others" as the downloads do, so they
read the same at 5 and at 500 merchants. Words, numbers and money are the reader's
(``view.t``); the browser lays out right-to-left text, so labels are anchored by the page's
direction instead of being put in visual order as for matplotlib. Output is deterministic.

The lines are shown ``LINES_PER_PAGE`` at a time (:class:`LinesPage`): a batch has a line per
issuer x redeemer cell, 2,550 at 50 merchants and 250,000 at 500, more than a page can show or
a reader can scroll; every line is in the signed JSON download, and each merchant's statement
lists its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import escape

from coalition.i18n import Formatter
from coalition.settlement.reports import OWE_COLOR, PAY_COLOR, BatchView, busiest, folded_positions

FONT_PX = 11
LABEL_CHARS = 24  # longer names are cut with "…" (the whole name is in the tooltip)
# matplotlib's "Blues" colour map at nine points, as in the downloads: light is few points, dark many.
BLUES = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")
MATRIX_LABEL_W, MATRIX_CELL_MAX, MATRIX_CELLS_W, MATRIX_NUMBERS_MAX = 170, 48, 500, 144
BAR_ROW_H, BAR_LABEL_W, BAR_VALUE_W, BAR_PLOT_W = 22, 170, 110, 360
TITLE_H = 28
LINES_PER_PAGE = 500


@dataclass(frozen=True)
class LinesPage:
    """The lines a page shows: ``view.lines[start:stop]``, and the links to the pages before and after."""

    start: int
    stop: int
    total: int
    previous_href: str | None = None
    next_href: str | None = None


def lines_page(total: int, first_line: int, href: Callable[[int], str]) -> LinesPage:
    """The page of lines from line number ``first_line`` (1-based; past the end: the last page).

    ``href(n)`` is the link to the page that starts at line ``n``."""
    start = max(0, min(first_line - 1, (total - 1) // LINES_PER_PAGE * LINES_PER_PAGE if total else 0))
    stop = min(total, start + LINES_PER_PAGE)
    return LinesPage(start, stop, total, href(max(1, start + 1 - LINES_PER_PAGE)) if start > 0 else None,
                     href(stop + 1) if stop < total else None)


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"


def _blue(fraction: float) -> str:
    """The colour of ``fraction`` (0 to 1) of the scale, interpolated between the nine points."""
    position = max(0.0, min(1.0, fraction)) * (len(BLUES) - 1)
    low = min(int(position), len(BLUES) - 2)
    mix = position - low
    a, b = _BLUES_RGB[low], _BLUES_RGB[low + 1]
    r, g, bl = (round(a[i] * (1 - mix) + b[i] * mix) for i in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


_BLUES_RGB = tuple(_rgb(c) for c in BLUES)  # parsed once: a matrix colours 2,500 cells


def _luminance(color: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else float(((c + 0.055) / 1.055) ** 2.4)

    r, g, b = (linear(int(color[i:i + 2], 16)) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ink_on(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (the higher contrast ratio)."""
    light = _luminance(color)
    return "#ffffff" if (1.05 / (light + 0.05)) > ((light + 0.05) / 0.05) else "#000000"


class _Anchors:
    """``text-anchor`` values for a side, whatever the text's direction: in a right-to-left page
    SVG's "start" is a text's right edge."""

    def __init__(self, t: Formatter) -> None:
        rtl = t.direction == "rtl"
        self.left_edge = "end" if rtl else "start"  # the text begins (visually) at x and runs right
        self.right_edge = "start" if rtl else "end"  # the text ends (visually) at x


def _svg(width: float, height: float, title_id: str, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-labelledby="{title_id}" '
            f'font-size="{FONT_PX}" fill="#222222"><title id="{title_id}">{escape(title)}</title>'
            f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="{FONT_PX + 2}" '
            f'font-weight="bold">{escape(title)}</text>{"".join(body)}</svg>')


def matrix_svg(view: BatchView) -> str:
    """The heat map of points honored as an ``<svg>`` element to inline in HTML."""
    t, _ = view.t, view.t.gettext
    number = functools.cache(t.number)  # a grid repeats its figures (0 most): Babel formats each once
    side = _Anchors(t)
    title = _("Points honored: issuer (row) x redeemer (column)")
    issuers, redeemers, grid = busiest(view)
    if not grid:
        body = [f'<text x="320" y="{TITLE_H + 30}" text-anchor="middle">'
                f'{escape(_("no points were honored in this period"))}</text>']
        return _svg(640, TITLE_H + 50, "matrix-title", title, body)
    cell = min(MATRIX_CELL_MAX, MATRIX_CELLS_W / len(redeemers))
    top = TITLE_H + 8
    left = MATRIX_LABEL_W
    peak = max(max(row) for row in grid) or 1  # the scale starts at nothing
    numbers = len(issuers) * len(redeemers) <= MATRIX_NUMBERS_MAX
    body = []
    for y, (issuer, row) in enumerate(zip(issuers, grid, strict=True)):
        cy = top + y * cell
        body.append(f'<text x="{left - 6}" y="{cy + cell / 2:.1f}" text-anchor="{side.right_edge}" '
                    f'dominant-baseline="middle"><title>{escape(issuer)}</title>{escape(_short(issuer))}</text>')
        for x, (redeemer, points) in enumerate(zip(redeemers, row, strict=True)):
            cx = left + x * cell
            fill = _blue(points / peak)
            body.append(f'<rect x="{cx:.1f}" y="{cy:.1f}" width="{cell:.1f}" height="{cell:.1f}" fill="{fill}" '
                        f'stroke="#ffffff" stroke-width="0.5"><title>{escape(issuer)} / {escape(redeemer)}: '
                        f'{escape(number(points))}</title></rect>')
            if numbers and points:
                body.append(f'<text x="{cx + cell / 2:.1f}" y="{cy + cell / 2:.1f}" text-anchor="middle" '
                            f'dominant-baseline="middle" font-size="{FONT_PX - 1}" fill="{ink_on(fill)}">'
                            f'{escape(number(points))}</text>')
    bottom = top + len(issuers) * cell
    for x, redeemer in enumerate(redeemers):  # column labels slanted down to the left, ending under their column
        cx = left + (x + 0.5) * cell
        body.append(f'<text x="{cx:.1f}" y="{bottom + 12:.1f}" text-anchor="{side.right_edge}" '
                    f'transform="rotate(-45 {cx:.1f} {bottom + 12:.1f})"><title>{escape(redeemer)}</title>'
                    f'{escape(_short(redeemer))}</text>')
    # The scale: a gradient from nothing to the busiest cell, with its two ends written.
    scale_x = left + len(redeemers) * cell + 16
    stops = "".join(f'<stop offset="{i / (len(BLUES) - 1):.3f}" stop-color="{c}"/>' for i, c in enumerate(BLUES))
    body.append(f'<defs><linearGradient id="matrix-scale" x1="0" y1="1" x2="0" y2="0">{stops}</linearGradient>'
                f'</defs><rect x="{scale_x:.1f}" y="{top}" width="12" height="{bottom - top:.1f}" '
                f'fill="url(#matrix-scale)" stroke="#999999" stroke-width="0.5"/>'
                f'<text x="{scale_x + 16:.1f}" y="{top + 8}" text-anchor="{side.left_edge}">'
                f'{escape(number(peak))}</text>'
                f'<text x="{scale_x + 16:.1f}" y="{bottom:.1f}" text-anchor="{side.left_edge}">0</text>'
                f'<text x="{scale_x + 16:.1f}" y="{(top + bottom) / 2:.1f}" text-anchor="{side.left_edge}">'
                f'{escape(_("Points"))}</text>')
    longest = max(len(_short(r)) for r in redeemers)
    width = max(640.0, scale_x + 90)
    return _svg(width, bottom + 20 + longest * FONT_PX * 0.45, "matrix-title", title, body)


def positions_svg(view: BatchView) -> str:
    """The net position of each merchant as a horizontal bar chart, an ``<svg>`` element."""
    t, _ = view.t, view.t.gettext
    side = _Anchors(t)
    title = _("Net positions ({currency}; > 0 the network pays the merchant)", currency=view.currency)
    rows = folded_positions(view)[::-1]  # the network pays the top rows most
    width = BAR_LABEL_W + 2 * BAR_VALUE_W + BAR_PLOT_W
    if not rows:
        body = [f'<text x="{width / 2:.0f}" y="{TITLE_H + 30}" text-anchor="middle">'
                f'{escape(_("no positions in this period"))}</text>']
        return _svg(width, TITLE_H + 50, "positions-title", title, body)
    low = min(0, *(p.net_minor for p in rows))
    high = max(0, *(p.net_minor for p in rows))
    span = (high - low) or 1
    plot_left = BAR_LABEL_W + BAR_VALUE_W

    def at(minor: int) -> float:
        return plot_left + (minor - low) / span * BAR_PLOT_W

    zero = at(0)
    top = TITLE_H + 8
    body = []
    for y, p in enumerate(rows):
        cy = top + y * BAR_ROW_H
        middle = cy + BAR_ROW_H / 2
        end = at(p.net_minor)
        money = escape(view.money(p.net_minor))
        body.append(f'<text x="{BAR_LABEL_W - 6}" y="{middle:.1f}" text-anchor="{side.right_edge}" '
                    f'dominant-baseline="middle"><title>{escape(p.name)}</title>{escape(_short(p.name))}</text>'
                    f'<rect x="{min(zero, end):.1f}" y="{cy + 4:.1f}" width="{max(abs(end - zero), 0.5):.1f}" '
                    f'height="{BAR_ROW_H - 8}" fill="{PAY_COLOR if p.net_minor >= 0 else OWE_COLOR}">'
                    f'<title>{escape(p.name)}: {money}</title></rect>')
        if p.net_minor >= 0:
            body.append(f'<text x="{end + 4:.1f}" y="{middle:.1f}" text-anchor="{side.left_edge}" '
                        f'dominant-baseline="middle">{money}</text>')
        else:
            body.append(f'<text x="{end - 4:.1f}" y="{middle:.1f}" text-anchor="{side.right_edge}" '
                        f'dominant-baseline="middle">{money}</text>')
    bottom = top + len(rows) * BAR_ROW_H
    body.append(f'<line x1="{zero:.1f}" y1="{top - 2}" x2="{zero:.1f}" y2="{bottom + 2:.1f}" stroke="#555555" '
                'stroke-width="0.8"/>')
    return _svg(width, bottom + 10, "positions-title", title, body)


@functools.cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("coalition.web", "templates"), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined)


def report_html(view: BatchView, links: list[tuple[str, str]] | None = None, first_line: int = 1,
                line_href: Callable[[int], str] | None = None) -> str:
    """The report as one self-contained HTML page (template in coalition/web/templates), showing the
    page of lines from ``first_line``; ``line_href(n)`` links the page starting at line ``n``."""
    page = lines_page(len(view.lines), first_line, line_href or (lambda n: f"?linesFrom={n}"))
    return _templates().get_template("settlement_report.html").render(
        view=view, t=view.t, _=view.t.gettext, links=links or [], matrix_svg=matrix_svg(view),
        positions_svg=positions_svg(view), page=page, shown=view.lines[page.start:page.stop])


def index_html(batches: list[Any], t: Formatter, older: int | None = None) -> str:
    """The admin console's list of batches (``batches``: SettlementBatch rows, newest first), in ``t``'s language."""
    return _templates().get_template("settlement_index.html").render(
        batches=batches, t=t, _=t.gettext, older=older, formats=("html", "pdf", "png", "csv", "json"))


def warm_up() -> None:
    """Compile the two templates now (at start-up) rather than in the first request for a report."""
    for name in ("settlement_report.html", "settlement_index.html"):
        _templates().get_template(name)
