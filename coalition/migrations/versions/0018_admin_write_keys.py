"""onboardMerchant and setNetworkPolicy take an optional idempotency key.

Revision ID: 0018_admin_write_keys
Revises: 0021_console_indexes
Create Date: 2026-12-07

- ``merchants``: ``idempotency_key`` and ``request_hash`` (NULL: onboarded without a key, or before),
  unique over the key (the network's one key space for onboardings: ``coalition/partners/service.py``).
- ``network_policies``: the same for policy versions (``coalition/settlement/policy.py``).

A unique index allows any number of NULLs on both databases, so writes without a key go on as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_admin_write_keys"
down_revision: str | Sequence[str] | None = "0021_console_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("merchants", "network_policies")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
            batch.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        op.create_index(f"uq_{table}_idempotency_key", table, ["idempotency_key"], unique=True)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_index(f"uq_{table}_idempotency_key", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("request_hash")
            batch.drop_column("idempotency_key")
