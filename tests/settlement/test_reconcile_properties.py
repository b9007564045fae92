"""Properties of the matching, on random files and ledgers (hypothesis)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from coalition.ledger.models import EntryKind
from coalition.settlement.reconcile import LedgerLine, PosRow, Status, match_lines

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
START, END = T0, T0 + dt.timedelta(hours=10)

references = st.one_of(st.none(), st.sampled_from(["R-1", "R-2", "R-3", "0001"]))
minutes = st.integers(min_value=-120, max_value=720)  # some before and after the window
points = st.sampled_from([-7, -3, 2, 5, 9])


@st.composite
def ledgers(draw: st.DrawFn) -> list[LedgerLine]:
    items = draw(st.lists(st.tuples(references, minutes, points), max_size=25))
    return [LedgerLine(entry_id=i + 1, kind=EntryKind.EARN if p > 0 else EntryKind.REDEEM, reference=ref,
                       time=T0 + dt.timedelta(minutes=m), amount_minor=p * 100 if p > 0 else None, points=p)
            for i, (ref, m, p) in enumerate(items)]


@st.composite
def files(draw: st.DrawFn) -> list[PosRow]:
    items = draw(st.lists(st.tuples(references, st.integers(min_value=0, max_value=599), points), max_size=25))
    return [PosRow(line=i + 2, reference=ref, time=T0 + dt.timedelta(minutes=m),
                   amount_minor=p * 100 if p > 0 else None, points=p) for i, (ref, m, p) in enumerate(items)]


@settings(max_examples=300, deadline=None)
@given(rows=files(), entries=ledgers())
def test_every_line_once_and_every_transaction_at_most_once(rows: list[PosRow], entries: list[LedgerLine]) -> None:
    lines = match_lines(rows, entries, start=START, end=END)
    seen_rows = Counter(line.row.line for line in lines if line.row)
    seen_entries = Counter(line.entry.entry_id for line in lines if line.entry)
    assert seen_rows == Counter(r.line for r in rows)  # every POS line exactly once
    assert all(n == 1 for n in seen_entries.values())  # no transaction twice
    inside = {e.entry_id for e in entries if START <= e.time < END}
    assert inside <= set(seen_entries)  # every transaction in the window is accounted for
    for line in lines:
        assert (line.row is None) == (line.status == Status.MISSING_IN_POS)
        assert (line.entry is None) == (line.status == Status.MISSING_IN_COALITION)
        if line.row and line.entry:
            assert (line.row.points > 0) == (line.entry.points > 0)  # never an earn against a redemption
            assert (line.status == Status.MATCHED) == (not line.differences)
            if line.matched_by == "reference":
                assert line.row.reference == line.entry.reference


@settings(max_examples=200, deadline=None)
@given(entries=ledgers(), data=st.data())
def test_a_file_made_from_the_ledger_matches_it_all(entries: list[LedgerLine], data: st.DataObject) -> None:
    inside = [e for e in entries if START <= e.time < END]
    shuffled = data.draw(st.permutations(inside))  # the POS lists them in its own order
    rows = [PosRow(line=i + 2, reference=e.reference, time=e.time, amount_minor=e.amount_minor, points=e.points)
            for i, e in enumerate(shuffled)]
    lines = match_lines(rows, inside, start=START, end=END)
    assert [line.status for line in lines] == [Status.MATCHED] * len(inside)
