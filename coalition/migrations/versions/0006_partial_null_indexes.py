"""Partial indexes for the two columns that are NULL on nearly every row.

Revision ID: 0006_partial_null_indexes
Revises: 0005_settlement_scale
Create Date: 2026-12-05

``entries.reverses_id`` (set only on a reversal) had a unique constraint over every entry,
and ``allocations.hold_id`` (set only on a hold's allocations) a plain index over every
allocation. Both now index only the rows where the column is set: every earn wrote one index
entry for a NULL, every redemption two, for no query (a lookup by value never matches NULL).
The uniqueness is the same: NULLs never conflicted. Measured with ``bench/wal_per_txn.py``
(docs/benchmarks-journal.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_partial_null_indexes"
down_revision: str | Sequence[str] | None = "0005_settlement_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REVERSAL = sa.text("reverses_id IS NOT NULL")
_HOLD = sa.text("hold_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_entries_reverses_id"), type_="unique")
        batch_op.create_index(batch_op.f("uq_entries_reverses_id"), ["reverses_id"], unique=True,
                              postgresql_where=_REVERSAL, sqlite_where=_REVERSAL)
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocations_hold_id"))
        batch_op.create_index(batch_op.f("ix_allocations_hold_id"), ["hold_id"], unique=False,
                              postgresql_where=_HOLD, sqlite_where=_HOLD)


def downgrade() -> None:
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocations_hold_id"))
        batch_op.create_index(batch_op.f("ix_allocations_hold_id"), ["hold_id"], unique=False)
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("uq_entries_reverses_id"))
        batch_op.create_unique_constraint(batch_op.f("uq_entries_reverses_id"), ["reverses_id"])
