"""Imports: an effective date beside the recorded date on ledger entries.

Revision ID: 0014_import_effective_dates
Revises: 0013_fraud_reviews
Create Date: 2026-12-07

- ``entries.effective_at``: when the movement happened, where that differs from when it was
  recorded (an imported history's original dates, ``coalition/portability``). NULL means
  ``created_at``; readers use ``COALESCE(effective_at, created_at)``. Nullable, so adding it
  rewrites no row and costs every other write nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_import_effective_dates"
down_revision: str | Sequence[str] | None = "0013_fraud_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("entries", sa.Column("effective_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("effective_at")
