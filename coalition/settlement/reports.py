"""Settlement report charts: plain figures in, SVG / PNG / PDF bytes out.

No database and no web here: :mod:`coalition.settlement.exports` builds a
:class:`BatchView` from a closed batch (or the what-if simulation does from computed
figures), and this module draws it with matplotlib's object API (``Figure`` + Agg, never
``pyplot``: no global state, no display). Two charts:

- the **matrix**: a heat map of points honored, issuer (rows) x redeemer (columns);
- the **net positions**: a horizontal bar per merchant, > 0 the network pays it.

Networks with many partners keep the ``MAX_PARTIES`` busiest and fold the rest into
"others" so a chart stays readable. Output is deterministic (no dates in the metadata,
fixed SVG ids), so the same batch always renders to the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from coalition.money import format_money

if TYPE_CHECKING:  # matplotlib is imported on first use: an API process that never draws does not load it
    from matplotlib.figure import Figure

MAX_PARTIES = 25
NETWORK_LABEL = "Network"
OTHERS_LABEL = "others"
PAY_COLOR = "#2e7d32"  # the network pays the merchant
OWE_COLOR = "#c62828"  # the merchant pays the network
_RC: Any = {"svg.hashsalt": "coalition", "svg.fonttype": "none", "font.size": 9, "axes.titlesize": 11}
# No dates in the files: the same batch renders to the same bytes.
_METADATA: dict[str, dict[str, Any]] = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "Creator": "Coalition"},
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


@dataclass(frozen=True)
class LineRow:
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


@dataclass(frozen=True)
class MatrixCell:
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

    def money(self, minor: int) -> str:
        return format_money(minor, self.currency_exponent)


def _busiest(view: BatchView) -> tuple[list[str], list[str], list[list[int]]]:
    """Row labels (issuers), column labels (redeemers) and the points grid, folded to MAX_PARTIES."""
    volume: dict[str, int] = {}
    for cell in view.matrix:
        volume[cell.issuer_name] = volume.get(cell.issuer_name, 0) + cell.points
        volume[cell.redeemer_name] = volume.get(cell.redeemer_name, 0) + cell.points
    keep = set(sorted(volume, key=lambda name: (-volume[name], name))[:MAX_PARTIES])

    def label(name: str) -> str:
        return name if name in keep else OTHERS_LABEL

    grid: dict[tuple[str, str], int] = {}
    for cell in view.matrix:
        key = (label(cell.issuer_name), label(cell.redeemer_name))
        grid[key] = grid.get(key, 0) + cell.points
    issuers = sorted({i for i, _ in grid}, key=lambda n: (n == OTHERS_LABEL, n != NETWORK_LABEL, n))
    redeemers = sorted({r for _, r in grid}, key=lambda n: (n == OTHERS_LABEL, n))
    return issuers, redeemers, [[grid.get((i, r), 0) for r in redeemers] for i in issuers]


def draw_matrix(figure: Figure, axes: Any, view: BatchView) -> None:
    issuers, redeemers, grid = _busiest(view)
    axes.set_title("Points honored: issuer (row) x redeemer (column)")
    if not grid:
        axes.text(0.5, 0.5, "no points were honored in this period", ha="center", va="center")
        axes.set_axis_off()
        return
    peak = max(max(row) for row in grid) or 1
    image = axes.imshow(grid, cmap="Blues", aspect="auto", vmin=0, vmax=peak)  # the scale starts at nothing
    axes.set_xticks(range(len(redeemers)), labels=redeemers, rotation=45, ha="right")
    axes.set_yticks(range(len(issuers)), labels=issuers)
    if len(issuers) * len(redeemers) <= 144:  # numbers in the cells while they fit
        for y, row in enumerate(grid):
            for x, points in enumerate(row):
                if points:
                    axes.text(x, y, f"{points:,}", ha="center", va="center",
                              color="white" if points > peak / 2 else "black")
    figure.colorbar(image, ax=axes, label="points")


def draw_positions(axes: Any, view: BatchView) -> None:
    rows = sorted(view.positions, key=lambda p: (p.net_minor, p.name))
    if len(rows) > MAX_PARTIES:  # the largest payers and payees, the middle folded
        half = MAX_PARTIES // 2
        middle = rows[half:len(rows) - half]
        folded = PositionRow(0, f"{len(middle)} {OTHERS_LABEL}", 0, 0, 0, 0, 0, 0, 0, 0,
                             sum(p.net_minor for p in middle))
        rows = [*rows[:half], folded, *rows[len(rows) - half:]]
    axes.set_title(f"Net positions ({view.currency}; > 0 the network pays the merchant)")
    if not rows:
        axes.text(0.5, 0.5, "no positions in this period", ha="center", va="center")
        axes.set_axis_off()
        return
    scale = 10**view.currency_exponent
    values = [p.net_minor / scale for p in rows]  # floats for drawing only; the figures stay integers
    axes.barh([p.name for p in rows], values, color=[PAY_COLOR if p.net_minor >= 0 else OWE_COLOR for p in rows],
              height=0.6)
    axes.axvline(0, color="#555555", linewidth=0.8)
    pad = max(0, 3 - len(rows)) / 2  # a lone bar stays a bar, not a block
    axes.set_ylim(-0.6 - pad, len(rows) - 0.4 + pad)
    for y, p in enumerate(rows):
        axes.text(values[y], y, f" {view.money(p.net_minor)} ", va="center",
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


def matrix_svg(view: BatchView) -> str:
    """The heat map as an ``<svg>`` element to inline in HTML (text stays text)."""
    with _drawing():
        figure = _new_figure(_figure_size(view))
        draw_matrix(figure, figure.add_subplot(), view)
        return _inline(_save(figure, "svg"))


def positions_svg(view: BatchView) -> str:
    """The net-position bar chart as an ``<svg>`` element."""
    with _drawing():
        figure = _new_figure(_figure_size(view))
        draw_positions(figure.add_subplot(), view)
        return _inline(_save(figure, "svg"))


def _inline(svg: bytes) -> str:
    text = svg.decode("utf-8")
    return text[text.index("<svg"):]


def _report_figure(view: BatchView) -> Figure:
    """One page: the summary, the positions table, both charts (for PDF and PNG)."""
    width, height = _figure_size(view)
    figure = _new_figure((width, 3.2 + 2 * height))
    top, table_axes, matrix_axes, bar_axes = figure.subplots(
        4, 1, gridspec_kw={"height_ratios": [0.45, 0.3 + 0.12 * min(len(view.positions), MAX_PARTIES), height,
                                             height]})
    top.set_axis_off()
    period = f"{view.period_start:%Y-%m-%d %H:%M} to {view.period_end:%Y-%m-%d %H:%M} UTC"
    summary = [view.title, period]
    if view.gross_minor is not None and view.net_minor is not None and view.network_income_minor is not None:
        summary.append(f"gross {view.money(view.gross_minor)} {view.currency}   net {view.money(view.net_minor)}   "
                       f"network income {view.money(view.network_income_minor)}   netting ratio {view.netting_ratio}")
    if view.digest:
        summary.append(f"digest {view.digest}")
    if view.merchant_root:
        summary.append(f"merchant root {view.merchant_root}")
    if view.commitment is not None:
        summary.append(f"your nonce {view.commitment.nonce}")
    summary.extend(view.notes)
    top.text(0, 1, "\n".join(summary), va="top", ha="left", family="monospace")
    table_axes.set_axis_off()
    rows = view.positions[:MAX_PARTIES]
    if rows:
        table = table_axes.table(
            cellText=[[p.name, f"{p.points_issued:,}", f"{p.points_honored:,}", view.money(p.charges_minor),
                       view.money(p.reimbursements_minor), view.money(p.breakage_minor + p.adjustments_minor),
                       view.money(p.net_minor)] for p in rows],
            colLabels=["merchant", "issued", "honored", "charges", "reimbursed", "breakage+adj.", "net"],
            loc="upper center", cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.auto_set_column_width(list(range(7)))
        for (row, column), cell in table.get_celld().items():
            if column == 0 and row > 0:
                cell.set_text_props(ha="left")
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


@functools.cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("coalition.web", "templates"), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined)


def report_html(view: BatchView, links: list[tuple[str, str]] | None = None) -> str:
    """The report as one self-contained HTML page (charts inline as SVG; template in coalition/web/templates)."""
    return _templates().get_template("settlement_report.html").render(
        view=view, links=links or [], matrix_svg=matrix_svg(view), positions_svg=positions_svg(view))


def index_html(batches: list[Any], currency_exponent: int, older: int | None = None) -> str:
    """The admin console's list of batches (``batches``: SettlementBatch rows, newest first)."""

    return _templates().get_template("settlement_index.html").render(
        batches=batches, money=lambda minor: format_money(minor, currency_exponent), older=older,
        formats=("html", "pdf", "png", "csv", "json"))
