"""Reconciliation of a POS export: parsing, matching, and the service against a real ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.db import Database
from coalition.errors import InvalidInput, NotFound
from coalition.ledger.models import Allocation, Entry, EntryKind, Hold, Lot, Posting
from coalition.ledger.service import Ledger
from coalition.members.models import Member
from coalition.settlement.reconcile import (
    LedgerLine,
    PosRow,
    Status,
    match_lines,
    parse_pos_csv,
    reconcile_pos_export,
)

T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
HEADER = "reference,time,amount_minor,points\n"


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


async def ledger_state(db: Database) -> dict[str, Any]:
    """Row counts of every ledger table plus the members' balances: reconciliation must leave them alone."""
    async with db.read() as conn:
        counts = {t.__tablename__: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                  for t in (Entry, Posting, Lot, Allocation, Hold, Member)}
        balances = [tuple(r) for r in await conn.execute(select(Member.id, Member.balance, Member.held))]
    return {"counts": counts, "balances": balances}


# ---------------------------------------------------------------- parsing


def test_columns_by_header_name_in_any_order_with_aliases() -> None:
    data = "\ufeffPoints;Receipt Reference;Amount;Timestamp;Till\n12;R-1;23.50;2026-01-05T13:00:00+01:00;3\n"
    parsed = parse_pos_csv(data, currency_exponent=2)
    assert parsed.errors == []
    assert parsed.rows == [PosRow(line=2, reference="R-1", time=T0, amount_minor=2350, points=12)]


def test_malformed_rows_are_reported_by_line_number_and_the_rest_still_counts() -> None:
    data = HEADER + "\n".join([
        "R-1,2026-01-05T12:00:00Z,1000,10",  # line 2: fine
        "R-2,yesterday,1000,10",  # 3
        "R-3,2026-01-05T12:00:00Z,1000,0",  # 4
        "R-4,2026-01-05T12:00:00Z,10.5,10",  # 5
        "R-5,2026-01-05T12:00:00Z,,10",  # 6: an earn without an amount
        "R-6,2026-01-05T12:00:00Z,1000",  # 7
        "",  # 8: blank lines are skipped
        "R-7,2026-01-05T12:00:00,,-5",  # 9: a redemption needs no amount; no offset means UTC
        "R-8,2026-01-05T12:00:00Z,-3,4",  # 10
    ]) + "\n"
    parsed = parse_pos_csv(data, currency_exponent=2)
    assert [(e.line, e.column, e.code) for e in parsed.errors] == [
        (3, "time", "INVALID_TIME"), (4, "points", "INVALID_POINTS"), (5, "amount_minor", "INVALID_AMOUNT"),
        (6, "amount_minor", "INVALID_AMOUNT"), (7, None, "MALFORMED_ROW"), (10, "amount_minor", "INVALID_AMOUNT"),
    ]
    assert all(e.message.startswith(f"line {e.line}: ") for e in parsed.errors)
    assert [(r.line, r.reference, r.points, r.amount_minor) for r in parsed.rows] == [
        (2, "R-1", 10, 1000), (9, "R-7", -5, None)]
    assert parsed.rows[1].time == T0
    assert parsed.rows_read == 8


def test_decimal_amounts_follow_the_currency_exponent() -> None:
    data = "reference,time,amount,points\nA,2026-01-05T12:00:00Z,23.5,1\nB,2026-01-05T12:00:00Z,23.505,1\n"
    parsed = parse_pos_csv(data, currency_exponent=2)
    assert [r.amount_minor for r in parsed.rows] == [2350]
    assert [(e.line, e.code) for e in parsed.errors] == [(3, "INVALID_AMOUNT")]
    assert "more than 2 decimal" in parsed.errors[0].message
    yen = parse_pos_csv("reference,time,amount,points\nA,2026-01-05T12:00:00Z,500,1\n", currency_exponent=0)
    assert yen.rows[0].amount_minor == 500


def test_a_broken_quote_is_reported_with_its_line() -> None:
    parsed = parse_pos_csv(HEADER + 'R-1,2026-01-05T12:00:00Z,100,1\n"R-2,2026', currency_exponent=2)
    assert [r.line for r in parsed.rows] == [2]
    assert [(e.line, e.code) for e in parsed.errors] == [(3, "MALFORMED_ROW")]


@pytest.mark.parametrize(("data", "code"), [
    ("", "CSV_EMPTY"),
    ("reference,time,points\n", "CSV_MISSING_COLUMNS"),
    ("ref,receipt,time,amount_minor,points\n", "CSV_BAD_HEADER"),
    ("reference,time,amount,amount_minor,points\n", "CSV_BAD_HEADER"),
    (b"reference,time,amount_minor,points\nR-\xe9,2026-01-05T12:00:00Z,1,1\n", "CSV_UNREADABLE"),
])
def test_unusable_files_are_refused_as_a_whole(data: str | bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_pos_csv(data, currency_exponent=2)
    assert info.value.code == code, repr(info.value)
    assert info.value.field == "csv"


def test_oversized_files_are_refused() -> None:
    row = "R-1,2026-01-05T12:00:00Z,100,1\n"
    with pytest.raises(InvalidInput) as by_bytes:
        parse_pos_csv(HEADER + row * 100, currency_exponent=2, max_bytes=1000)
    assert by_bytes.value.code == "CSV_TOO_LARGE"
    with pytest.raises(InvalidInput) as by_rows:
        parse_pos_csv(HEADER + row * 11, currency_exponent=2, max_rows=10)
    assert by_rows.value.code == "CSV_TOO_LARGE"
    assert len(parse_pos_csv(HEADER + row * 10, currency_exponent=2, max_rows=10).rows) == 10


# ---------------------------------------------------------------- matching (pure)


def row(line: int, reference: str | None, minutes: float, points: int, amount: int | None = None) -> PosRow:
    return PosRow(line=line, reference=reference, time=at(minutes), amount_minor=amount, points=points)


def entry(entry_id: int, reference: str | None, minutes: float, points: int, amount: int | None = None,
          kind: EntryKind = EntryKind.EARN) -> LedgerLine:
    return LedgerLine(entry_id=entry_id, kind=kind, reference=reference, time=at(minutes), amount_minor=amount,
                      points=points)


def test_matching_categories_and_differences() -> None:
    rows = [
        row(2, "R-1", 0, 10, 1000),  # matched
        row(3, "R-2", 1, 10, 999),  # amount differs
        row(4, "R-3", 2, -7),  # points differ
        row(5, "R-4", 60, 5, 500),  # time differs by an hour
        row(6, "R-5", 3, 5, 500),  # not in the ledger
        row(7, None, 10, -20),  # a capture: no reference, matched by time and points
        row(8, "R-1", 11, -4),  # same receipt, other direction: the redemption on the sale
    ]
    entries = [
        entry(1, "R-1", 0.5, 10, 1000),
        entry(2, "R-2", 1, 10, 1000),
        entry(3, "R-3", 2, -8, kind=EntryKind.REDEEM),
        entry(4, "R-4", 0, 5, 500),
        entry(5, None, 11, -20, kind=EntryKind.CAPTURE),
        entry(6, "R-1", 11, -4, kind=EntryKind.REDEEM),
        entry(7, "R-6", 20, 3, 300),  # not in the file
        entry(8, None, 30, -9, kind=EntryKind.CAPTURE),  # not in the file
        entry(9, "R-7", 200, 3, 300),  # beyond the window: read for clock skew only, not reported
    ]
    lines = match_lines(rows, entries, start=at(0), end=at(61))
    seen = {(line.row.line if line.row else None, line.entry.entry_id if line.entry else None):
            (line.status, line.differences, line.matched_by) for line in lines}
    assert seen == {
        (2, 1): (Status.MATCHED, (), "reference"),
        (3, 2): (Status.MISMATCHED, ("amount",), "reference"),
        (4, 3): (Status.MISMATCHED, ("points",), "reference"),
        (5, 4): (Status.MISMATCHED, ("time",), "reference"),
        (6, None): (Status.MISSING_IN_COALITION, (), None),
        (7, 5): (Status.MATCHED, (), "time_and_points"),
        (8, 6): (Status.MATCHED, (), "reference"),
        (None, 7): (Status.MISSING_IN_POS, (), None),
        (None, 8): (Status.MISSING_IN_POS, (), None),
    }


def test_duplicate_references_pair_in_time_order() -> None:
    rows = [row(2, "R-1", 5, 3, 300), row(3, "R-1", 0, 2, 200), row(4, "R-1", 9, 1, 100)]
    entries = [entry(1, "R-1", 0, 2, 200), entry(2, "R-1", 5, 3, 300)]
    lines = match_lines(rows, entries, start=at(0), end=at(10))
    assert [(ln.status, ln.row.line if ln.row else None, ln.entry.entry_id if ln.entry else None)
            for ln in lines] == [(Status.MATCHED, 3, 1), (Status.MATCHED, 2, 2), (Status.MISSING_IN_COALITION, 4, None)]


# ---------------------------------------------------------------- against the ledger


@dataclass
class Shops:
    ledger: Ledger
    clock: Any
    a: int
    b: int
    loyalty_id: str
    counter: int = 0

    def key(self) -> str:
        self.counter += 1
        return f"k-{self.counter}"

    async def earn(self, merchant: int, amount: int, reference: str | None) -> Any:
        return (await self.ledger.earn(merchant_id=merchant, loyalty_id=self.loyalty_id, purchase_amount_minor=amount,
                                       reference=reference, idempotency_key=self.key())).entry


@pytest.fixture
async def shops(ledger: Ledger, clock: Any, make_merchant: Any, make_member: Any) -> Shops:
    a = (await make_merchant("Bakery", 1)).merchant.id
    b = (await make_merchant("Books", 1)).merchant.id
    member = (await make_member(a)).member
    return Shops(ledger=ledger, clock=clock, a=a, b=b, loyalty_id=member.loyalty_id)


async def history(shops: Shops) -> dict[str, Any]:
    """At the bakery: two earns, a redemption, a captured hold, one earn reversed; at the bookshop: R-1 too."""
    ids: dict[str, Any] = {}
    ids["r1"] = await shops.earn(shops.a, 2350, "R-1")  # 12:00, 23 points
    shops.clock.advance(minutes=1)
    ids["r2"] = await shops.earn(shops.a, 1000, "R-2")  # 12:01, 10 points
    shops.clock.advance(minutes=1)
    ids["r3"] = (await shops.ledger.redeem(merchant_id=shops.a, loyalty_id=shops.loyalty_id, points=5, reference="R-3",
                                           idempotency_key=shops.key())).entry  # 12:02
    shops.clock.advance(minutes=1)
    hold = (await shops.ledger.authorize(merchant_id=shops.a, loyalty_id=shops.loyalty_id, points=8,
                                         idempotency_key=shops.key())).hold
    shops.clock.advance(minutes=1)
    ids["capture"] = (await shops.ledger.capture(merchant_id=shops.a, hold_id=hold.id, points=6,
                                                 idempotency_key=shops.key())).entry  # 12:04, 6 honored
    shops.clock.advance(minutes=1)
    ids["r4"] = await shops.earn(shops.a, 700, "R-4")  # 12:05
    await shops.ledger.reverse(merchant_id=shops.a, transaction_id=ids["r4"].id, reason="refund",
                               idempotency_key=shops.key())
    ids["b1"] = await shops.earn(shops.b, 4200, "R-1")  # the bookshop's receipt R-1, 42 points
    ids["b9"] = await shops.earn(shops.b, 900, "R-9")
    return ids


POS_FILE = HEADER + """\
R-1,2026-01-05T12:00:10Z,2350,23
R-2,2026-01-05T12:01:00Z,1100,10
,2026-01-05T13:04:00+01:00,,-6
R-4,2026-01-05T12:05:00Z,700,7
R-9,2026-01-05T12:05:00Z,900,9
R-10,2026-01-05T12:05:00Z,nope,9
"""


async def test_reconcile_against_the_merchants_own_ledger(db: Database, shops: Shops) -> None:
    ids = await history(shops)
    before = await ledger_state(db)

    report = await reconcile_pos_export(db, merchant_id=shops.a, data=POS_FILE, currency_exponent=2)

    assert (report.start, report.end) == (T0 + dt.timedelta(seconds=10), at(5) + dt.timedelta(microseconds=1))
    matched = report.by_status(Status.MATCHED)
    assert [(ln.row.line, ln.entry.entry_id, ln.entry.reversed) for ln in matched if ln.row and ln.entry] == [
        (2, ids["r1"].id, False), (4, ids["capture"].id, False), (5, ids["r4"].id, True)]
    [mismatched] = report.by_status(Status.MISMATCHED)
    assert (mismatched.row and mismatched.row.line, mismatched.differences) == (3, ("amount",))
    # The bookshop's R-9 is not the bakery's: missing, and nothing of the bookshop's shows.
    [missing] = report.by_status(Status.MISSING_IN_COALITION)
    assert missing.row is not None and missing.row.reference == "R-9"
    [not_in_file] = report.by_status(Status.MISSING_IN_POS)
    assert not_in_file.entry is not None and not_in_file.entry.entry_id == ids["r3"].id
    assert not_in_file.entry.points == -5
    shown = {ln.entry.entry_id for ln in report.lines if ln.entry}
    assert not shown & {ids["b1"].id, ids["b9"].id}
    assert [(e.line, e.code) for e in report.row_errors] == [(7, "INVALID_AMOUNT")]
    totals = report.totals(Status.MATCHED)
    assert (totals.count, totals.pos_points, totals.ledger_points) == (3, 23 - 6 + 7, 23 - 6 + 7)
    assert (totals.pos_amount_minor, totals.ledger_amount_minor) == (3050, 3050)
    mismatch_totals = report.totals(Status.MISMATCHED)
    assert (mismatch_totals.pos_amount_minor, mismatch_totals.ledger_amount_minor) == (1100, 1000)
    assert await ledger_state(db) == before


async def test_an_explicit_window_reports_lines_outside_it(db: Database, shops: Shops) -> None:
    await history(shops)
    report = await reconcile_pos_export(db, merchant_id=shops.a, data=POS_FILE, currency_exponent=2,
                                        start=at(1), end=at(3))
    assert sorted((e.line, e.code) for e in report.row_errors) == [
        (2, "OUTSIDE_WINDOW"), (4, "OUTSIDE_WINDOW"), (5, "OUTSIDE_WINDOW"), (6, "OUTSIDE_WINDOW"),
        (7, "INVALID_AMOUNT")]
    assert [(ln.status, ln.entry and ln.entry.reference) for ln in report.lines] == [
        (Status.MISMATCHED, "R-2"), (Status.MISSING_IN_POS, "R-3")]


async def test_bad_requests_change_nothing(db: Database, shops: Shops) -> None:
    await history(shops)
    before = await ledger_state(db)
    with pytest.raises(InvalidInput) as window:
        await reconcile_pos_export(db, merchant_id=shops.a, data=POS_FILE, currency_exponent=2, start=at(5), end=at(1))
    assert window.value.code == "INVALID_WINDOW"
    with pytest.raises(NotFound) as unknown:
        await reconcile_pos_export(db, merchant_id=999, data=POS_FILE, currency_exponent=2)
    assert unknown.value.code == "MERCHANT_NOT_FOUND"
    with pytest.raises(InvalidInput) as large:
        await reconcile_pos_export(db, merchant_id=shops.a, data=POS_FILE * 50, currency_exponent=2, max_bytes=4096)
    assert large.value.code == "CSV_TOO_LARGE"
    assert await ledger_state(db) == before


async def test_an_empty_file_reports_nothing_missing(db: Database, shops: Shops) -> None:
    await history(shops)
    report = await reconcile_pos_export(db, merchant_id=shops.a, data=HEADER, currency_exponent=2)
    assert (report.lines, report.row_errors, report.rows_read) == ([], [], 0)


def test_receipt_numbers_that_restart_daily_pair_with_the_right_day() -> None:
    day = 24 * 60
    rows = [row(2, "0001", day + 1, 5, 500)]
    entries = [entry(1, "0001", 0, 4, 400), entry(2, "0001", day, 5, 500), entry(3, "0001", 2 * day, 6, 600)]
    lines = match_lines(rows, entries, start=at(day), end=at(2 * day))
    assert [(ln.status, ln.entry.entry_id if ln.entry else None) for ln in lines] == [(Status.MATCHED, 2)]


def test_one_reference_for_everything_still_pairs_quickly() -> None:
    count = 20_000
    rows = [row(i + 2, "SALE", i, 1, 100) for i in range(count)]
    entries = [entry(i + 1, "SALE", i + 0.1, 1, 100) for i in range(count)]
    lines = match_lines(rows, entries, start=at(0), end=at(count))
    assert len(lines) == count and all(ln.status == Status.MATCHED for ln in lines)
    assert all(ln.row and ln.entry and ln.entry.entry_id == ln.row.line - 1 for ln in lines)


def test_windows_line_endings_and_quoted_fields() -> None:
    data = ('reference,time,amount_minor,points\r\n"R-1, table 4",2026-01-05T12:00:00Z,2350,23\r\n'
            '"R-2\r\nsplit",2026-01-05T12:00:00Z,1,1\r\nR-3,2026-01-05T12:00:00Z,100,1\r\n')
    parsed = parse_pos_csv(data, currency_exponent=2)
    assert [(r.line, r.reference) for r in parsed.rows] == [(2, "R-1, table 4"), (5, "R-3")]
    assert [(e.line, e.code) for e in parsed.errors] == [(3, "INVALID_REFERENCE")]  # a line break inside
