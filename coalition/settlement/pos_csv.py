"""POS exports: the CSV a merchant's till or back office writes, read into plain rows.

The CSV (UTF-8, a header row, comma-separated; ``;`` or a tab also work when the header
uses them). Columns are found by their header names, in any order, case and ``_``/``-``/
space insensitive; other columns are ignored:

==================  =========================================================================
``reference``       the receipt reference (also ``receipt``, ``receipt_reference``, ``ref``);
                    may be blank (a hold captured at the till has none in the ledger)
``time``            ISO 8601 (``2026-01-05T12:00:00+01:00``); without an offset it is UTC
                    (also ``timestamp``, ``datetime``, ``created_at``)
``amount_minor``    the purchase amount as an integer in minor units (``2350``), **or**
``amount``          the same as a decimal in the currency's major unit (``23.50`` with EUR's
                    exponent 2; at most that many decimals). One of the two, not both.
                    Required on earn lines; ignored on redemption lines, for which the
                    ledger records no amount.
``points``          signed like the API's ``Transaction.points``: ``+`` points issued (an
                    earn), ``-`` points honored (a redemption or a captured hold); never 0
==================  =========================================================================

A file-level problem (too large, not UTF-8, no usable header) refuses the whole file; a bad
line is a :class:`RowError` with its line number, and the other lines still count.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from coalition.errors import InvalidInput
from coalition.ledger.core import MAX_POINTS

MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_CSV_ROWS = 100_000
MAX_ROW_ERRORS = 1_000  # reported individually; the count says how many in all
MAX_REFERENCE_LENGTH = 128

COLUMN_ALIASES = {
    "reference": ("reference", "receipt", "receipt_reference", "receipt_ref", "receipt_no", "receipt_number", "ref"),
    "time": ("time", "timestamp", "datetime", "date_time", "created_at"),
    "amount_minor": ("amount_minor",),
    "amount": ("amount",),
    "points": ("points",),
}
_ALIAS_TO_COLUMN = {alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases}
_INTEGER = re.compile(r"[+-]?\d{1,19}")


@dataclass(frozen=True)
class PosRow:
    """One valid line of the POS file. ``line`` is its line number in the file (header = 1)."""

    line: int
    reference: str | None
    time: dt.datetime
    amount_minor: int | None
    points: int


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    code: str
    message: str


@dataclass(frozen=True)
class ParsedExport:
    rows: list[PosRow]
    errors: list[RowError]
    error_count: int
    rows_read: int


def parse_pos_csv(data: str | bytes, *, currency_exponent: int, max_bytes: int = MAX_CSV_BYTES,
                  max_rows: int = MAX_CSV_ROWS) -> ParsedExport:
    """Parse a POS export. A file-level problem raises :class:`InvalidInput` (field ``csv``);
    a bad line is a :class:`RowError` with its line number and the rest of the file still counts."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise InvalidInput(f"the file is {len(raw):,} bytes; at most {max_bytes:,}: split it by period",
                           code="CSV_TOO_LARGE", field="csv")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the file is not UTF-8 (byte {exc.start}): export it as UTF-8",
                           code="CSV_UNREADABLE", field="csv") from None
    first_line = text.split("\n", 1)[0]
    delimiter = next((d for d in (",", ";", "\t") if d in first_line), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidInput(f"line 1: the header cannot be read: {exc}", code="CSV_UNREADABLE", field="csv") from None
    if not header or not any(cell.strip() for cell in header):
        raise InvalidInput("the file is empty: it needs a header row (reference,time,amount_minor,points)",
                           code="CSV_EMPTY", field="csv")
    positions = _columns(header)
    errors: list[RowError] = []
    error_count = 0
    rows: list[PosRow] = []
    rows_read = 0
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader, None)
        except csv.Error as exc:
            record, problem = None, RowError(line, None, "MALFORMED_ROW", f"line {line}: {exc}")
            error_count += 1
            errors.append(problem)
            break  # the csv module cannot resynchronise after a broken quote
        if record is None:
            break
        start, line = line, reader.line_num + 1
        if not record or all(not cell.strip() for cell in record):
            continue
        rows_read += 1
        if rows_read > max_rows:
            raise InvalidInput(f"the file has more than {max_rows:,} lines; split it by period",
                               code="CSV_TOO_LARGE", field="csv")
        parsed = _row(start, record, len(header), positions, currency_exponent)
        if isinstance(parsed, PosRow):
            rows.append(parsed)
        else:
            error_count += 1
            if len(errors) < MAX_ROW_ERRORS:
                errors.append(parsed)
    return ParsedExport(rows=rows, errors=errors, error_count=error_count, rows_read=rows_read)


def _columns(header: Sequence[str]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        key = re.sub(r"[\s\-]+", "_", name.strip().lower())
        column = _ALIAS_TO_COLUMN.get(key)
        if column is None:
            continue
        if column in positions:
            raise InvalidInput(f"line 1: two columns mean {column!r} ({header[positions[column]]!r} and {name!r})",
                               code="CSV_BAD_HEADER", field="csv")
        positions[column] = index
    if "amount" in positions and "amount_minor" in positions:
        raise InvalidInput("line 1: give either amount (decimal) or amount_minor (integer), not both",
                           code="CSV_BAD_HEADER", field="csv")
    missing = [c for c in ("reference", "time", "points") if c not in positions]
    if "amount" not in positions and "amount_minor" not in positions:
        missing.append("amount_minor (or amount)")
    if missing:
        raise InvalidInput(f"line 1: the header lacks {', '.join(missing)}; "
                           "expected reference,time,amount_minor,points", code="CSV_MISSING_COLUMNS", field="csv")
    return positions


def _row(line: int, record: list[str], width: int, positions: dict[str, int], exponent: int) -> PosRow | RowError:
    if len(record) != width:
        return RowError(line, None, "MALFORMED_ROW", f"line {line}: {len(record)} fields, the header has {width}")
    cell = {column: record[index].strip() for column, index in positions.items()}

    def error(column: str, code: str, message: str) -> RowError:
        return RowError(line, column, code, f"line {line}: {message}")

    reference = cell["reference"] or None
    if reference is not None and (len(reference) > MAX_REFERENCE_LENGTH or any(ord(c) < 32 for c in reference)):
        return error("reference", "INVALID_REFERENCE",
                     f"reference must be at most {MAX_REFERENCE_LENGTH} printable characters")
    try:
        time = dt.datetime.fromisoformat(cell["time"])
    except ValueError:
        return error("time", "INVALID_TIME", f"time {cell['time'][:40]!r} is not ISO 8601 (2026-01-05T12:00:00Z)")
    time = time.replace(tzinfo=dt.UTC) if time.tzinfo is None else time.astimezone(dt.UTC)
    if not _INTEGER.fullmatch(cell["points"]) or not 0 < abs(int(cell["points"])) <= MAX_POINTS:
        return error("points", "INVALID_POINTS",
                     f"points {cell['points'][:40]!r} must be a non-zero integer: + earned, - redeemed")
    points = int(cell["points"])
    amount_column = "amount_minor" if "amount_minor" in cell else "amount"
    amount = _amount(cell[amount_column], exponent, minor=amount_column == "amount_minor")
    if isinstance(amount, str):
        return error(amount_column, "INVALID_AMOUNT", f"{amount_column} {cell[amount_column][:40]!r} {amount}")
    if points > 0 and amount is None:
        return error(amount_column, "INVALID_AMOUNT", "an earn line (points > 0) needs the purchase amount")
    return PosRow(line=line, reference=reference, time=time, amount_minor=amount if points > 0 else None,
                  points=points)


def _amount(text: str, exponent: int, *, minor: bool) -> int | str | None:
    """The amount in minor units, None when blank, or what is wrong with it."""
    if not text:
        return None
    if minor:
        if not _INTEGER.fullmatch(text):
            return "must be an integer in minor units (2350 for 23.50)"
        value = int(text)
    else:
        if not re.fullmatch(r"[+-]?\d{1,17}(\.\d+)?", text):
            return "must be a decimal number (23.50)"
        scaled = Decimal(text).scaleb(exponent)
        if scaled != scaled.to_integral_value():
            return f"has more than {exponent} decimal(s)"
        value = int(scaled)
    if not 0 < value <= MAX_POINTS:
        return f"must be positive and at most {MAX_POINTS:,} minor units"
    return value
