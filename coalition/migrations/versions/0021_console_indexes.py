"""The merchant console's figures read from indexes: a merchant's entries by member, its lots by expiry.

Revision ID: 0021_console_indexes
Revises: 0017_tier_policy_keys
Create Date: 2026-12-07

- ``entries (merchant_id, member_id) INCLUDE (kind, points, created_at)``: the dashboard's
  totals, weeks, members and repeat visits in one index-only scan, the customers page's
  keyset pages and each customer's visits (coalition/console/dashboard.py).
- ``lots (issuer_merchant_id, expires_at) INCLUDE (remaining)``: a merchant's outstanding points.

SQLite has no INCLUDE: the same key columns, the rest read from the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021_console_indexes"
down_revision: str | Sequence[str] | None = "0017_tier_policy_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_entries_merchant_member", "entries", ["merchant_id", "member_id"],
                    postgresql_include=["kind", "points", "created_at"])
    op.create_index("ix_lots_issuer_expiry", "lots", ["issuer_merchant_id", "expires_at"],
                    postgresql_include=["remaining"])


def downgrade() -> None:
    op.drop_index("ix_lots_issuer_expiry", table_name="lots")
    op.drop_index("ix_entries_merchant_member", table_name="entries")
