"""setTierPolicy takes an idempotency key; settlement lines say which program their points paid for.

Revision ID: 0017_tier_policy_keys
Revises: 0016_console_users
Create Date: 2026-12-07

- ``tier_policies``: ``idempotency_key`` and ``request_hash`` (NULL for the versions written before),
  unique over the key (the network's one key space for policies: ``coalition/programs/tier_review.py``).
- ``settlement_lines``: ``program`` (CAMPAIGN, TIER, QUEST, VOUCHER; NULL: plain points), after ``line_no``
  (``coalition/settlement/pricing.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_tier_policy_keys"
down_revision: str | Sequence[str] | None = "0016_console_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tier_policies") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
    op.create_index("uq_tier_policies_idempotency_key", "tier_policies", ["idempotency_key"], unique=True)
    with op.batch_alter_table("settlement_lines") as batch:
        batch.add_column(sa.Column("program", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("settlement_lines") as batch:
        batch.drop_column("program")
    op.drop_index("uq_tier_policies_idempotency_key", table_name="tier_policies")
    with op.batch_alter_table("tier_policies") as batch:
        batch.drop_column("request_hash")
        batch.drop_column("idempotency_key")
