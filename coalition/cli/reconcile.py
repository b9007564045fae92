"""``coalition reconcile``: a merchant's POS export beside its ledger."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from coalition.cli._common import _iso_time, _run, _settings, _with_db, console, err_console
from coalition.db import Database


@click.command()
@click.option("--merchant", "merchant_id", required=True, type=int, help="Whose ledger to compare the file with.")
@click.argument("file", type=click.File("rb"))
@click.option("--from", "start", callback=_iso_time, help="Window start, ISO 8601 (default: the file's first line).")
@click.option("--to", "end", callback=_iso_time, help="Window end, exclusive (default: after the file's last line).")
@click.option("--tolerance-s", default=300, show_default=True, type=click.IntRange(0, 86_400),
              help="How far apart POS and ledger times may be.")
@click.option("--max-lines", default=200, show_default=True, type=click.IntRange(0),
              help="Lines shown per table (the totals always count them all).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def reconcile(merchant_id: int, file: Any, start: Any, end: Any, tolerance_s: int, max_lines: int,
              as_json: bool) -> None:
    """Compare a merchant's POS export (CSV, FILE or - for stdin) with its ledger. Writes nothing.

    The CSV has a header row naming reference, time (ISO 8601), amount_minor (integer
    minor units) or amount (decimal), and points (+ earned, - redeemed), in any order.
    """
    import datetime as dt

    from coalition.money import format_money
    from coalition.settlement.pos_csv import MAX_CSV_BYTES
    from coalition.settlement.reconcile import Status, reconcile_pos_export, report_as_dict

    settings = _settings()
    data = file.read(MAX_CSV_BYTES + 1)  # one byte over is enough to refuse it

    async def run(db: Database) -> Any:
        return await reconcile_pos_export(db, merchant_id=merchant_id, data=data, start=start, end=end,
                                          currency_exponent=settings.currency_exponent,
                                          tolerance=dt.timedelta(seconds=tolerance_s))

    report = _run(_with_db(settings, run))
    if as_json:
        click.echo(json.dumps(report_as_dict(report), indent=2))
        return
    window = f"{report.start:%Y-%m-%d %H:%M:%S} to {report.end:%Y-%m-%d %H:%M:%S} UTC" if report.start else "empty"
    console.print(f"merchant {merchant_id}: {report.rows_read:,} line(s) read, window {window}")

    def money(minor: int | None) -> str:
        return "" if minor is None else format_money(minor, settings.currency_exponent)

    def when(moment: dt.datetime | None) -> str:
        return "" if moment is None else f"{moment:%Y-%m-%d %H:%M}"

    sections = [
        (Status.MISMATCHED, "Mismatched", ("line", "reference", "differs", "in the POS file", "in Coalition")),
        (Status.MISSING_IN_COALITION, "Missing in Coalition", ("line", "reference", "time", "points", "amount")),
        (Status.MISSING_IN_POS, "Missing in the POS file", ("transaction", "reference", "time", "points",
                                                             "amount")),
    ]
    for status, title, columns in sections:
        lines = report.by_status(status)
        if not lines:
            continue
        table = Table(title=f"{title} ({len(lines):,})", title_justify="left", header_style="bold", box=None,
                      pad_edge=False)
        for column in columns:
            numeric = column.endswith(("points", "amount"))
            table.add_column(column, justify="right" if numeric else "left", no_wrap=not numeric)
        for line in lines[:max_lines]:
            row, entry = line.row, line.entry
            reference = (row.reference if row else None) or (entry.reference if entry else None) or ""
            if status == Status.MISMATCHED and row and entry:
                pos = {"points": f"{row.points} pts", "amount": money(row.amount_minor), "time": when(row.time)}
                ours = {"points": f"{entry.points} pts", "amount": money(entry.amount_minor), "time": when(entry.time)}
                table.add_row(str(row.line), reference, ", ".join(line.differences),
                              "; ".join(pos[d] for d in line.differences), "; ".join(ours[d] for d in line.differences))
            elif row:
                table.add_row(str(row.line), reference, when(row.time), str(row.points), money(row.amount_minor))
            elif entry:
                label = f"{entry.kind.value} {entry.entry_id}" + (" (reversed)" if entry.reversed else "")
                table.add_row(label, reference, when(entry.time), str(entry.points), money(entry.amount_minor))
        console.print(table)
        if len(lines) > max_lines:
            console.print(f"… and {len(lines) - max_lines:,} more (--max-lines, or --json for all)")
    totals = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("", "lines", "POS points", "POS amount", "ledger points", "ledger amount"):
        totals.add_column(column, justify="left" if not column else "right", no_wrap=not column)
    for status, label in zip(Status, ("matched", "mismatched", "missing in Coalition", "missing in POS"), strict=True):
        t = report.totals(status)
        totals.add_row(label, f"{t.count:,}", f"{t.pos_points:,}", money(t.pos_amount_minor), f"{t.ledger_points:,}",
                       money(t.ledger_amount_minor))
    console.print(totals)
    for error in report.row_errors:
        err_console.print(f"✗ {error.message} ({error.code})", markup=False, style="red")
    if report.row_error_count > len(report.row_errors):
        err_console.print(f"… and {report.row_error_count - len(report.row_errors):,} more unreadable lines")
