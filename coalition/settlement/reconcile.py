"""Reconciliation: a merchant's POS export (CSV) against its own ledger entries.

Reads only. Nothing here writes to the database; the one query reads the merchant's
EARN, REDEEM and CAPTURE entries in the window.

The file's format is in :mod:`coalition.settlement.pos_csv`.

Matching rules:

1. By reference: a line pairs with a transaction of the same reference and direction
   (earn or honor), lines taken in time order: among those within ``tolerance`` of its
   time the one whose points and amount agree, else the nearest in time (so receipt
   numbers that restart every day pair with the right day's). A pair whose points, amount
   (earns) or time (more than ``tolerance`` apart) differ is *mismatched*, with the
   fields named.
2. The lines left over try the entries that have no reference (captures): same direction,
   same points, time within ``tolerance``, the nearest first.
3. Lines still unmatched are *missing in Coalition*; entries still unmatched whose time
   lies in the window are *missing in the POS file*. Entries up to a day (plus the
   tolerance) either side of the window are read too, so a line near an edge or from a
   POS whose clock is off still finds its transaction; they are never reported missing.

Reversals: a refund does not remove the original transaction, so the original sale is
still expected in the POS file and still matches; the line says ``reversed``. REVERSAL
entries themselves are not lines (their reference is the refund's reason, not a receipt);
a POS that exports refunds as separate lines should leave them out of the file.

The window is ``[start, end)`` when given (lines outside it are row errors), else from
the earliest to the latest line of the file.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from coalition.db import Database
from coalition.errors import InvalidInput, NotFound
from coalition.ledger.models import Entry, EntryKind, Hold
from coalition.partners.models import Merchant
from coalition.settlement.pos_csv import (
    MAX_CSV_BYTES,
    MAX_CSV_ROWS,
    MAX_ROW_ERRORS,
    ParsedExport,
    PosRow,
    RowError,
    parse_pos_csv,
)

__all__ = ["DEFAULT_TOLERANCE", "LedgerLine", "Line", "ParsedExport", "PosRow", "Report", "RowError", "Status",
           "Totals", "load_ledger_lines", "match_lines", "parse_pos_csv", "reconcile_pos_export", "report_as_dict"]

DEFAULT_TOLERANCE = dt.timedelta(minutes=5)  # POS clock vs. the server's
READ_MARGIN = dt.timedelta(days=1)
MAX_CANDIDATES = 32  # transactions within the tolerance weighed for one line, each side


class Status(enum.StrEnum):
    MATCHED = "MATCHED"
    MISMATCHED = "MISMATCHED"
    MISSING_IN_COALITION = "MISSING_IN_COALITION"
    MISSING_IN_POS = "MISSING_IN_POS"


@dataclass(frozen=True)
class LedgerLine:
    """One of the merchant's entries as the POS would see it: ``points`` signed as in the file."""

    entry_id: int
    kind: EntryKind
    reference: str | None
    time: dt.datetime
    amount_minor: int | None
    points: int
    reversed: bool = False


@dataclass(frozen=True)
class Line:
    """One result line: a POS row, a ledger entry, or both."""

    status: Status
    row: PosRow | None
    entry: LedgerLine | None
    differences: tuple[str, ...] = ()  # "points", "amount", "time"
    matched_by: str | None = None  # "reference" or "time_and_points"


@dataclass
class Totals:
    count: int = 0
    pos_points: int = 0
    pos_amount_minor: int = 0
    ledger_points: int = 0
    ledger_amount_minor: int = 0

    def add(self, line: Line) -> None:
        self.count += 1
        if line.row is not None:
            self.pos_points += line.row.points
            self.pos_amount_minor += line.row.amount_minor or 0
        if line.entry is not None:
            self.ledger_points += line.entry.points
            self.ledger_amount_minor += line.entry.amount_minor or 0


@dataclass
class Report:
    merchant_id: int
    start: dt.datetime | None
    end: dt.datetime | None
    rows_read: int
    lines: list[Line] = field(default_factory=list)
    row_errors: list[RowError] = field(default_factory=list)
    row_error_count: int = 0

    def by_status(self, status: Status) -> list[Line]:
        return [line for line in self.lines if line.status == status]

    def totals(self, status: Status) -> Totals:
        totals = Totals()
        for line in self.by_status(status):
            totals.add(line)
        return totals


# ---------------------------------------------------------------- matching


def _direction(points: int) -> int:
    return 1 if points > 0 else -1


def _compare(row: PosRow, entry: LedgerLine, tolerance: dt.timedelta) -> tuple[str, ...]:
    differences = []
    if row.points != entry.points:
        differences.append("points")
    if row.points > 0 and entry.amount_minor is not None and row.amount_minor != entry.amount_minor:
        differences.append("amount")
    if abs(row.time - entry.time) > tolerance:
        differences.append("time")
    return tuple(differences)


class _Pool:
    """Entries in time order; :meth:`take` removes and returns the best one for a line.

    Two "next free slot" forests (union-find with path halving) skip taken entries, so a
    file of 100k lines that all carry the same reference still pairs in n log n.
    """

    def __init__(self, entries: Iterable[LedgerLine]) -> None:
        self.entries = sorted(entries, key=lambda e: (e.time, e.entry_id))
        self.times = [e.time for e in self.entries]
        size = len(self.entries)
        self._right = list(range(size + 1))  # slot size: none to the right
        self._left = list(range(size + 1))  # slot i + 1 stands for index i; 0: none to the left

    @staticmethod
    def _find(parent: list[int], i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def take(self, row: PosRow, tolerance: dt.timedelta, *, beyond: bool) -> LedgerLine | None:
        """The free entry for ``row``: within ``tolerance`` of its time, the one that agrees with it
        (points, then amount) and then the nearest; with ``beyond``, else the nearest at any distance."""
        at = bisect.bisect_left(self.times, row.time)
        close: list[int] = []
        i = self._find(self._right, at)
        while i < len(self.entries) and self.times[i] - row.time <= tolerance and len(close) < MAX_CANDIDATES:
            close.append(i)
            i = self._find(self._right, i + 1)
        j = self._find(self._left, at) - 1  # the free index before ``at``
        while j >= 0 and row.time - self.times[j] <= tolerance and len(close) < 2 * MAX_CANDIDATES:
            close.append(j)
            j = self._find(self._left, j) - 1
        if close:
            best = min(close, key=lambda k: (self.entries[k].points != row.points,
                                             row.points > 0 and self.entries[k].amount_minor != row.amount_minor,
                                             abs(self.times[k] - row.time), self.entries[k].entry_id))
        elif beyond and (i < len(self.entries) or j >= 0):
            best = min((k for k in (i, j) if 0 <= k < len(self.entries)),
                       key=lambda k: (abs(self.times[k] - row.time), self.entries[k].entry_id))
        else:
            return None
        self._right[best] = best + 1
        self._left[best + 1] = best
        return self.entries[best]

    def left_over(self) -> list[LedgerLine]:
        return [e for i, e in enumerate(self.entries) if self._find(self._right, i) == i]


def match_lines(rows: Iterable[PosRow], entries: Iterable[LedgerLine], *, start: dt.datetime, end: dt.datetime,
                tolerance: dt.timedelta = DEFAULT_TOLERANCE) -> list[Line]:
    """Pair POS rows with ledger lines (rules in the module docstring). Pure; ordered by time."""
    by_reference: dict[tuple[str, int], tuple[list[PosRow], list[LedgerLine]]] = defaultdict(lambda: ([], []))
    loose_rows: list[PosRow] = []
    loose_entries: list[LedgerLine] = []
    for row in rows:
        if row.reference is None:
            loose_rows.append(row)
        else:
            by_reference[(row.reference, _direction(row.points))][0].append(row)
    for entry in entries:
        if entry.reference is None:
            loose_entries.append(entry)
        else:
            by_reference[(entry.reference, _direction(entry.points))][1].append(entry)

    lines: list[Line] = []
    unmatched_entries: list[LedgerLine] = []

    def pair(row: PosRow, entry: LedgerLine, matched_by: str) -> None:
        differences = _compare(row, entry, tolerance)
        lines.append(Line(Status.MISMATCHED if differences else Status.MATCHED, row, entry, differences, matched_by))

    # First pass: by reference and direction, each line with the nearest transaction in time
    # (receipt numbers that restart every day still pair with the right day's).
    for group_rows, group_entries in by_reference.values():
        pool = _Pool(group_entries)
        for row in sorted(group_rows, key=lambda r: (r.time, r.line)):
            found = pool.take(row, tolerance, beyond=True)
            if found is None:
                loose_rows.append(row)
            else:
                pair(row, found, "reference")
        unmatched_entries.extend(pool.left_over())

    # Second pass: rows without a partner against entries without a reference (captures),
    # by equal points and the nearest time within the tolerance.
    by_points: dict[int, list[LedgerLine]] = defaultdict(list)
    for entry in loose_entries:
        by_points[entry.points].append(entry)
    pools = {points: _Pool(group) for points, group in by_points.items()}
    for row in sorted(loose_rows, key=lambda r: (r.time, r.line)):
        points_pool = pools.get(row.points)
        found = points_pool.take(row, tolerance, beyond=False) if points_pool is not None else None
        if found is None:
            lines.append(Line(Status.MISSING_IN_COALITION, row, None))
        else:
            pair(row, found, "time_and_points")
    for points_pool in pools.values():
        unmatched_entries.extend(points_pool.left_over())
    lines.extend(Line(Status.MISSING_IN_POS, None, e) for e in unmatched_entries if start <= e.time < end)

    def order(line: Line) -> tuple[dt.datetime, int, int]:
        time = line.row.time if line.row is not None else line.entry.time  # type: ignore[union-attr]
        return time, line.row.line if line.row else 0, line.entry.entry_id if line.entry else 0

    return sorted(lines, key=order)


# ---------------------------------------------------------------- the ledger side


async def load_ledger_lines(conn: AsyncConnection, merchant_id: int, start: dt.datetime,
                            end: dt.datetime) -> list[LedgerLine]:
    """The merchant's earns, redemptions and captures with ``start <= created_at < end``: one query."""
    reversal = aliased(Entry)
    query = (
        select(Entry.id, Entry.kind, Entry.reference, Entry.created_at, Entry.amount_minor, Entry.points,
               Hold.captured_points, reversal.id.label("reversal_id"))
        .outerjoin(Hold, and_(Entry.kind == EntryKind.CAPTURE, Hold.id == Entry.hold_id))
        .outerjoin(reversal, reversal.reverses_id == Entry.id)
        .where(Entry.merchant_id == merchant_id,
               or_(Entry.kind.in_([EntryKind.EARN, EntryKind.REDEEM]),
                   and_(Entry.kind == EntryKind.CAPTURE, Hold.captured_points > 0)),
               Entry.created_at >= start, Entry.created_at < end)
        .order_by(Entry.id)
    )
    lines = []
    for r in await conn.execute(query):
        # A CAPTURE entry's own points are what went back to the member; the POS sees what was honored.
        points = -r.captured_points if r.kind == EntryKind.CAPTURE else r.points
        amount = r.amount_minor if r.kind == EntryKind.EARN else None
        lines.append(LedgerLine(entry_id=r.id, kind=EntryKind(r.kind), reference=r.reference, time=r.created_at,
                                amount_minor=amount, points=points, reversed=r.reversal_id is not None))
    return lines


async def reconcile_pos_export(
    db: Database,
    *,
    merchant_id: int,
    data: str | bytes,
    currency_exponent: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    tolerance: dt.timedelta = DEFAULT_TOLERANCE,
    max_bytes: int = MAX_CSV_BYTES,
    max_rows: int = MAX_CSV_ROWS,
) -> Report:
    """Reconcile a POS export with ``merchant_id``'s own ledger entries. Reads only."""
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a UTC offset", code="INVALID_WINDOW", field=name)
    if start is not None and end is not None and start >= end:
        raise InvalidInput(f"from ({start.isoformat()}) must be before to ({end.isoformat()})",
                           code="INVALID_WINDOW", field="from")
    if not dt.timedelta(0) <= tolerance <= dt.timedelta(days=1):
        raise InvalidInput("the time tolerance must be between 0 and 1 day", code="INVALID_TOLERANCE",
                           field="toleranceSeconds")
    # Off the event loop: a 5 MB file takes a second or two to parse and match.
    parsed = await asyncio.to_thread(parse_pos_csv, data, currency_exponent=currency_exponent, max_bytes=max_bytes,
                                     max_rows=max_rows)
    rows, errors, error_count = parsed.rows, list(parsed.errors), parsed.error_count
    if start is not None or end is not None:
        inside = []
        for row in rows:
            if (start is None or row.time >= start) and (end is None or row.time < end):
                inside.append(row)
                continue
            error_count += 1
            if len(errors) < MAX_ROW_ERRORS:
                errors.append(RowError(row.line, "time", "OUTSIDE_WINDOW",
                                       f"line {row.line}: time {row.time.isoformat()} is outside the window"))
        rows = inside
    errors.sort(key=lambda e: e.line)
    window_start = start or (min(r.time for r in rows) if rows else None)
    window_end = end or (max(r.time for r in rows) + dt.timedelta(microseconds=1) if rows else None)
    async with db.read() as conn:
        if (await conn.execute(select(Merchant.id).where(Merchant.id == merchant_id))).first() is None:
            raise NotFound(f"no merchant {merchant_id}", code="MERCHANT_NOT_FOUND", field="merchantId")
        if window_start is None or window_end is None:
            entries: list[LedgerLine] = []
            window_start = window_start or window_end
            window_end = window_end or window_start
        else:
            # Read beyond the window: a line near its edge, or from a POS whose clock is off, still finds its
            # transaction (and shows the time difference); only transactions inside it can be missing.
            margin = tolerance + READ_MARGIN
            entries = await load_ledger_lines(conn, merchant_id, window_start - margin, window_end + margin)
    lines = (await asyncio.to_thread(match_lines, rows, entries, start=window_start, end=window_end,
                                     tolerance=tolerance)
             if window_start is not None and window_end is not None else [])
    return Report(merchant_id=merchant_id, start=window_start, end=window_end, rows_read=parsed.rows_read,
                  lines=lines, row_errors=errors, row_error_count=error_count)


def report_as_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (``coalition reconcile --json``): times ISO 8601, amounts integers."""

    def side(line: Line) -> dict[str, Any]:
        row, entry = line.row, line.entry
        return {
            "status": line.status.value, "line": row.line if row else None,
            "reference": row.reference if row and row.reference else entry.reference if entry else None,
            "pos": None if row is None else {"time": row.time.isoformat(), "amountMinor": row.amount_minor,
                                             "points": row.points},
            "ledger": None if entry is None else {"transactionId": entry.entry_id, "kind": entry.kind.value,
                                                  "time": entry.time.isoformat(), "amountMinor": entry.amount_minor,
                                                  "points": entry.points, "reversed": entry.reversed},
            "differences": list(line.differences), "matchedBy": line.matched_by,
        }

    return {
        "merchantId": report.merchant_id,
        "from": report.start.isoformat() if report.start else None,
        "to": report.end.isoformat() if report.end else None,
        "rowsRead": report.rows_read,
        "totals": {status.value: _camel(asdict(report.totals(status))) for status in Status},
        "lines": [side(line) for line in report.lines],
        "rowErrors": [_camel(asdict(error)) for error in report.row_errors],
        "rowErrorCount": report.row_error_count,
    }


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    """``pos_amount_minor`` -> ``posAmountMinor``, as the API spells its fields."""
    return {k.split("_")[0] + "".join(part.title() for part in k.split("_")[1:]): v for k, v in fields.items()}
