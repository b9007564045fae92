"""Settlement reports: the figures a report shows (:class:`BatchView`), and the report drawn as PDF or PNG.

No database and no web here: :mod:`coalition.settlement.exports` builds a
:class:`BatchView` from a closed batch (or the what-if simulation does from computed
figures), and this module draws the downloads with matplotlib's object API (``Figure`` +
Agg, never ``pyplot``: no global state, no display): the summary, the positions table and
two charts,

- the **matrix**: a heat map of points honored, issuer (rows) x redeemer (columns);
- the **net positions**: a horizontal bar per merchant, > 0 the network pays it.

The HTML page draws the same two charts as hand-written SVG
(:mod:`coalition.settlement.report_page`): matplotlib costs a few hundred milliseconds to
import and draw, too much for a page. Networks with many partners keep the
``MAX_PARTIES`` busiest and fold the rest into "others" (:func:`busiest`,
:func:`folded_positions`, shared by both) so a chart stays readable. Output is
deterministic (no dates in the metadata), so the same batch always renders to the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from coalition.i18n import Formatter

if TYPE_CHECKING:  # matplotlib is imported on first use: an API process that never draws does not load it
    from matplotlib.figure import Figure

MAX_PARTIES = 25
NETWORK_LABEL = "Network"
OTHERS_LABEL = "others"
PAY_COLOR = "#2e7d32"  # the network pays the merchant
OWE_COLOR = "#c62828"  # the merchant pays the network
_RC: Any = {"font.size": 9, "axes.titlesize": 11}
# No dates in the files: the same batch renders to the same bytes.
_METADATA: dict[str, dict[str, Any]] = {"pdf": {"CreationDate": None, "Creator": "Coalition"},
                                        "png": {"Software": "Coalition"}}
# matplotlib's font cache and text layout are not safe across threads; renders are short.
_lock = threading.Lock()


@dataclass(frozen=True)
class PositionRow:
    merchant_id: int
    name: str
    points_issued: int
    points_honored: int
    points_reversed: int
    points_expired: int
    charges_minor: int
    reimbursements_minor: int
    breakage_minor: int
    adjustments_minor: int
    net_minor: int


class LineRow(NamedTuple):
    """A line as a report shows it. Named tuples, as the matrix's cells: a report of a dense batch
    makes thousands of each, and a frozen dataclass costs several times as much to make."""

    kind: str
    issuer_id: int | None  # None: the network
    issuer_name: str
    redeemer_id: int | None
    redeemer_name: str
    points: int
    issuer_minor: int
    redeemer_minor: int
    original_entry_id: int | None = None
    original_batch_id: int | None = None
    program: str = ""  # what program the points paid for (CAMPAIGN, TIER, QUEST, VOUCHER); "": plain points


class MatrixCell(NamedTuple):
    issuer_id: int | None
    issuer_name: str
    redeemer_id: int
    redeemer_name: str
    points: int
    reimbursed_minor: int


@dataclass(frozen=True)
class BatchView:
    """Everything a report shows. ``merchant_id`` set: one merchant's statement (its own rows only)."""

    title: str
    batch_id: int | None  # None: a simulation, nothing stored
    seq: int | None
    period_start: Any
    period_end: Any
    currency: str
    currency_exponent: int
    gross_minor: int | None  # batch totals: None in a merchant's statement (they would reveal others)
    net_minor: int | None
    network_income_minor: int | None
    netting_ratio: str | None
    positions: list[PositionRow]
    lines: list[LineRow]
    matrix: list[MatrixCell]
    digest: str | None = None
    signature: str | None = None
    merchant_id: int | None = None
    merchant_root: str | None = None  # version 2: the Merkle root of the salted statements
    commitment: Any = None  # a merchant's statement: its statements.Commitment (nonce and inclusion proof)
    notes: list[str] = field(default_factory=list)
    current_net: dict[int, int] | None = None  # a simulation: each merchant's net under the real policy
    lang: str = "en"  # the reader's language: words, money, dates and numbers (never the signed figures)

    @functools.cached_property
    def t(self) -> Formatter:  # made once: a page formats every figure of thousands of lines through it
        return Formatter(self.lang, self.currency, self.currency_exponent)

    def money(self, minor: int) -> str:
        return self.t.money(minor)

    def period(self) -> str:
        """The period in the reader's words, times in UTC."""
        t = self.t
        return t.gettext("{start} to {end} UTC", start=t.datetime(self.period_start), end=t.datetime(self.period_end))

    def visual(self, text: str) -> str:
        """``text`` in the order a chart draws it: matplotlib lays text out left to right, so a
        right-to-left language's words are put in visual order here (HTML is left to the browser)."""
        return visual_order(text) if self.t.direction == "rtl" else text


_RTL = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
_STRONG = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]+|[^\W_]+(?:[.,:/'\u2019-][^\W_]+)*[.%]?")
_MIRROR = str.maketrans("()[]{}<>«»", ")(][}{><»«")


def visual_order(text: str) -> str:
    """A right-to-left line in left-to-right drawing order, enough for a chart's labels: runs of
    right-to-left letters (and the spaces and punctuation between them) are reversed and their
    brackets mirrored; runs of Latin letters and numbers ("1.234,56", "kr.", "ID") keep their order.

    Not the full Unicode bidirectional algorithm: no embedding levels, one paragraph."""
    if not _RTL.search(text):
        return text
    runs: list[tuple[bool, str]] = []  # (right-to-left, text) in logical order
    position = 0
    for match in _STRONG.finditer(text):
        if match.start() > position:
            runs.append((True, text[position:match.start()]))  # neutrals take the paragraph's direction
        runs.append((bool(_RTL.match(match.group())), match.group()))
        position = match.end()
    if position < len(text):
        runs.append((True, text[position:]))
    merged: list[tuple[bool, str]] = []
    for rtl, part in runs:  # a neutral between two left-to-right runs joins them ("1.234,56 kr.")
        if merged and merged[-1][0] == rtl:
            merged[-1] = (rtl, merged[-1][1] + part)
        else:
            merged.append((rtl, part))
    for i in range(1, len(merged) - 1):
        if merged[i][0] and not merged[i - 1][0] and not merged[i + 1][0] and not _RTL.search(merged[i][1]):
            merged[i] = (False, merged[i][1])
    joined: list[tuple[bool, str]] = []
    for rtl, part in merged:
        if joined and joined[-1][0] == rtl:
            joined[-1] = (rtl, joined[-1][1] + part)
        else:
            joined.append((rtl, part))
    return "".join(part[::-1].translate(_MIRROR) if rtl else part for rtl, part in reversed(joined))


def busiest(view: BatchView) -> tuple[list[str], list[str], list[list[int]]]:
    """Row labels (issuers), column labels (redeemers) and the points grid, folded to MAX_PARTIES."""
    volume: dict[str, int] = {}
    for cell in view.matrix:
        volume[cell.issuer_name] = volume.get(cell.issuer_name, 0) + cell.points
        volume[cell.redeemer_name] = volume.get(cell.redeemer_name, 0) + cell.points
    keep = set(sorted(volume, key=lambda name: (-volume[name], name))[:MAX_PARTIES])
    others, network = view.t.gettext(OTHERS_LABEL), view.t.gettext(NETWORK_LABEL)

    def label(name: str) -> str:
        return name if name in keep else others

    grid: dict[tuple[str, str], int] = {}
    for cell in view.matrix:
        key = (label(cell.issuer_name), label(cell.redeemer_name))
        grid[key] = grid.get(key, 0) + cell.points
    issuers = sorted({i for i, _ in grid}, key=lambda n: (n == others, n != network, n))
    redeemers = sorted({r for _, r in grid}, key=lambda n: (n == others, n))
    return issuers, redeemers, [[grid.get((i, r), 0) for r in redeemers] for i in issuers]


def draw_matrix(figure: Figure, axes: Any, view: BatchView) -> None:
    issuers, redeemers, grid = busiest(view)
    _, v = view.t.gettext, view.visual
    axes.set_title(v(_("Points honored: issuer (row) x redeemer (column)")))
    if not grid:
        axes.text(0.5, 0.5, v(_("no points were honored in this period")), ha="center", va="center")
        axes.set_axis_off()
        return
    peak = max(max(row) for row in grid) or 1
    image = axes.imshow(grid, cmap="Blues", aspect="auto", vmin=0, vmax=peak)  # the scale starts at nothing
    axes.set_xticks(range(len(redeemers)), labels=[v(r) for r in redeemers], rotation=45, ha="right")
    axes.set_yticks(range(len(issuers)), labels=[v(i) for i in issuers])
    if len(issuers) * len(redeemers) <= 144:  # numbers in the cells while they fit
        for y, row in enumerate(grid):
            for x, points in enumerate(row):
                if points:
                    axes.text(x, y, view.t.number(points), ha="center", va="center",
                              color="white" if points > peak / 2 else "black")
    figure.colorbar(image, ax=axes, label=v(_("Points")))


def folded_positions(view: BatchView) -> list[PositionRow]:
    """The positions by net, smallest first; past MAX_PARTIES the largest payers and payees, the middle
    folded into one "N others" row (merchant id 0) holding their summed net."""
    rows = sorted(view.positions, key=lambda p: (p.net_minor, p.name))
    if len(rows) > MAX_PARTIES:
        half = MAX_PARTIES // 2
        middle = rows[half:len(rows) - half]
        folded = PositionRow(0, view.t.gettext("{n} others", n=view.t.number(len(middle))), 0, 0, 0, 0, 0, 0, 0, 0,
                             sum(p.net_minor for p in middle))
        rows = [*rows[:half], folded, *rows[len(rows) - half:]]
    return rows


def draw_positions(axes: Any, view: BatchView) -> None:
    _, v = view.t.gettext, view.visual
    rows = folded_positions(view)
    axes.set_title(v(_("Net positions ({currency}; > 0 the network pays the merchant)", currency=view.currency)))
    if not rows:
        axes.text(0.5, 0.5, v(_("no positions in this period")), ha="center", va="center")
        axes.set_axis_off()
        return
    scale = 10**view.currency_exponent
    values = [p.net_minor / scale for p in rows]  # floats for drawing only; the figures stay integers
    axes.barh([v(p.name) for p in rows], values, color=[PAY_COLOR if p.net_minor >= 0 else OWE_COLOR for p in rows],
              height=0.6)
    axes.axvline(0, color="#555555", linewidth=0.8)
    pad = max(0, 3 - len(rows)) / 2  # a lone bar stays a bar, not a block
    axes.set_ylim(-0.6 - pad, len(rows) - 0.4 + pad)
    for y, p in enumerate(rows):
        axes.text(values[y], y, f" {v(view.money(p.net_minor))} ", va="center",
                  ha="left" if p.net_minor >= 0 else "right")
    axes.margins(x=0.25)


def _figure_size(view: BatchView) -> tuple[float, float]:
    parties = min(MAX_PARTIES + 1, max(len(view.positions), 3))
    return 8.27, max(4.0, 1.2 + 0.3 * parties)


@contextlib.contextmanager
def _drawing() -> Iterator[None]:
    from matplotlib import rc_context

    with _lock, rc_context(_RC):
        yield


def _new_figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _save(figure: Figure, fmt: str, **kwargs: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    metadata = _METADATA[fmt]
    figure.savefig(buffer, format=fmt, metadata=metadata, bbox_inches="tight", **kwargs)
    return buffer.getvalue()


def _report_figure(view: BatchView) -> Figure:
    """One page: the summary, the positions table, both charts (for PDF and PNG)."""
    width, height = _figure_size(view)
    figure = _new_figure((width, 3.2 + 2 * height))
    top, table_axes, matrix_axes, bar_axes = figure.subplots(
        4, 1, gridspec_kw={"height_ratios": [0.45, 0.3 + 0.12 * min(len(view.positions), MAX_PARTIES), height,
                                             height]})
    top.set_axis_off()
    t, v = view.t, view.visual
    _ = t.gettext
    summary = [view.title, view.period()]
    if view.gross_minor is not None and view.net_minor is not None and view.network_income_minor is not None:
        summary.append(_("Gross obligations: {gross}", gross=view.money(view.gross_minor)))
        summary.append(_("Net (through the clearing account): {net}", net=view.money(view.net_minor)))
        summary.append(_("Network income: {income}", income=view.money(view.network_income_minor)))
        summary.append(_("Netting ratio: {ratio}", ratio=view.netting_ratio))
    if view.digest:
        summary.append(_("Digest: {digest}", digest=view.digest))
    if view.merchant_root:
        summary.append(_("Merkle root: {root}", root=view.merchant_root))
    if view.commitment is not None:
        summary.append(_("Your nonce: {nonce}", nonce=view.commitment.nonce))
    summary.extend(view.notes)
    rtl = t.direction == "rtl"
    top.text(1 if rtl else 0, 1, "\n".join(v(line) for line in summary), va="top", ha="right" if rtl else "left",
             family=["DejaVu Sans Mono", "DejaVu Sans"])  # the second has the Hebrew letters
    table_axes.set_axis_off()
    rows = view.positions[:MAX_PARTIES]
    if rows:
        labels = [_("Merchant"), _("Issued"), _("Honored"), _("Charges"), _("Reimbursed"), _("Breakage + adjustments"),
                  _("Net")]
        cells = [[v(p.name), t.number(p.points_issued), t.number(p.points_honored), v(view.money(p.charges_minor)),
                  v(view.money(p.reimbursements_minor)), v(view.money(p.breakage_minor + p.adjustments_minor)),
                  v(view.money(p.net_minor))] for p in rows]
        if rtl:  # the first column on the right
            labels, cells = labels[::-1], [row[::-1] for row in cells]
        table = table_axes.table(cellText=cells, colLabels=[v(label) for label in labels], loc="upper center",
                                 cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.auto_set_column_width(list(range(7)))
        name_column = 6 if rtl else 0
        for (row, column), cell in table.get_celld().items():
            if column == name_column and row > 0:
                cell.set_text_props(ha="right" if rtl else "left")
    draw_matrix(figure, matrix_axes, view)
    draw_positions(bar_axes, view)
    figure.tight_layout()
    return figure


def report_png(view: BatchView, *, dpi: int = 110) -> bytes:
    """The whole report as one PNG image."""
    with _drawing():
        return _save(_report_figure(view), "png", dpi=dpi)


def report_pdf(view: BatchView) -> bytes:
    """The whole report as a one-page PDF."""
    with _drawing():
        return _save(_report_figure(view), "pdf")
