"""Reviewers' decisions on fraud alerts.

Revision ID: 0013_fraud_reviews
Revises: 0012_rewards_stamps_quests
Create Date: 2026-12-07

- ``fraud_reviews``: one row per decision (CONFIRMED or DISMISSED) on a member or merchant;
  the newest per subject counts (``coalition/network/reviews.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_fraud_reviews"
down_revision: str | Sequence[str] | None = "0012_rewards_stamps_quests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fraud_reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subject_kind", sa.Enum("MEMBER", "MERCHANT", name="reviewsubject", native_enum=False, length=16),
                  nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.Enum("CONFIRMED", "DISMISSED", name="reviewdecision", native_enum=False,
                                      length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_reviews")),
    )
    op.create_index("ix_fraud_reviews_subject", "fraud_reviews", ["subject_kind", "subject_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_fraud_reviews_subject", table_name="fraud_reviews")
    op.drop_table("fraud_reviews")
