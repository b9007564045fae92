"""The console dashboard's rollup: each merchant's entries added up by the worker, not by every page view.

Revision ID: 0024_dashboard_rollup
Revises: 0023_settlement_windows
Create Date: 2026-12-07

- ``dashboard_members``: per (merchant, member) the entries, earns, points issued and honored;
- ``dashboard_weeks``: per (merchant, UTC week from Monday) the points issued and honored;
- ``dashboard_merchants``: per merchant the totals of ``dashboard_members``;
- ``dashboard_rollup``: the one row saying which entries are rolled up (``rolled_through_id``)
  and the id noted to be rolled up next (coalition/console/rollup.py).

Empty at first: the dashboard counts every entry until the worker's ``dashboards`` job has
rolled them up (its first runs on a large ledger take a few seconds, in steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_dashboard_rollup"
down_revision: str | Sequence[str] | None = "0023_settlement_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counts(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "dashboard_members",
        sa.Column("merchant_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("member_id", sa.BigInteger(), autoincrement=False, nullable=False),
        *_counts("entries", "earns", "issued", "honored"),
        sa.PrimaryKeyConstraint("merchant_id", "member_id", name=op.f("pk_dashboard_members")),
    )
    op.create_table(
        "dashboard_weeks",
        sa.Column("merchant_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("week_start", sa.DateTime(timezone=True), nullable=False),
        *_counts("issued", "honored"),
        sa.PrimaryKeyConstraint("merchant_id", "week_start", name=op.f("pk_dashboard_weeks")),
    )
    op.create_table(
        "dashboard_merchants",
        sa.Column("merchant_id", sa.BigInteger(), autoincrement=False, nullable=False),
        *_counts("served", "served_enrolled", "buyers", "repeat", "issued", "honored"),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_dashboard_merchants")),
    )
    op.create_table(
        "dashboard_rollup",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("rolled_through_id", sa.BigInteger(), nullable=False),
        sa.Column("pending_id", sa.BigInteger(), nullable=True),
        sa.Column("pending_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_rollup")),
    )


def downgrade() -> None:
    for table in ("dashboard_rollup", "dashboard_merchants", "dashboard_weeks", "dashboard_members"):
        op.drop_table(table)
