"""A settlement batch's figures for the report tests (tests/settlement): made up, no database."""

from __future__ import annotations

import datetime as dt

from coalition.settlement.reports import BatchView, LineRow, MatrixCell, PositionRow


def view(merchants: int) -> BatchView:
    positions = [PositionRow(i, f"Shop {i:02d}", 10 * i, 5 * i, 0, 0, 10 * i, 9 * i, 0, 0, (-1) ** i * 111 * i)
                 for i in range(1, merchants + 1)]
    matrix = [MatrixCell(i, f"Shop {i:02d}", j, f"Shop {j:02d}", i + j, i + j)
              for i in range(1, merchants + 1) for j in range(1, merchants + 1) if i != j]
    matrix.append(MatrixCell(None, "Network", 1, "Shop 01", 7, 6))
    return BatchView("Settlement batch 9", 9, 9, dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                     dt.datetime(2026, 2, 1, tzinfo=dt.UTC), "EUR", 2, 1000, 500, 12, "0.5000", positions,
                     [LineRow("HONORED", 1, "Shop 01", 2, "Shop 02", 3, 0, 3)], matrix, digest="d" * 64)
