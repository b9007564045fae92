"""A closed batch keeps the window aggregates it was priced from: the what-if re-prices them.

Revision ID: 0023_settlement_windows
Revises: 0022_campaign_result_snapshots
Create Date: 2026-12-07

- ``settlement_windows``: one row per batch closed from now on, the JSON of the rows its
  figures were priced from (coalition/settlement/windows.py). Batches closed before have
  none: the what-if reads their window from the ledger, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_settlement_windows"
down_revision: str | Sequence[str] | None = "0022_campaign_result_snapshots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settlement_windows",
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["settlement_batches.id"],
                                name=op.f("fk_settlement_windows_batch_id_settlement_batches")),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_settlement_windows")),
    )


def downgrade() -> None:
    op.drop_table("settlement_windows")
