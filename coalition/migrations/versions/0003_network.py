"""Network analysis results and network-issued bonuses.

Revision ID: 0003_network
Revises: 0002_settlement
Create Date: 2026-11-25

- ``insight_runs`` and ``insight_results``: stored analysis results (``coalition.network.models``).
- ``uq_entries_network_idempotency_key``: a partial unique index making the network's own
  ledger writes (bonuses, ``merchant_id`` NULL) happen once per idempotency key.
- ``EntryKind.BONUS`` needs nothing: ``entries.kind`` is a non-native enum, a VARCHAR(16).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_network"
down_revision: str | Sequence[str] | None = "0002_settlement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "insight_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "status",
            sa.Enum("RUNNING", "SUCCEEDED", "FAILED", name="runstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_runs")),
    )
    op.create_table(
        "insight_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["insight_runs.id"], name=op.f("fk_insight_results_run_id_insight_runs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_results")),
    )
    with op.batch_alter_table("insight_results", schema=None) as batch_op:
        batch_op.create_index("ix_insight_results_scope_run", ["scope", "run_id"], unique=True)
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.create_index(
            "uq_entries_network_idempotency_key", ["idempotency_key"], unique=True,
            postgresql_where=sa.text("merchant_id IS NULL"), sqlite_where=sa.text("merchant_id IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_index("uq_entries_network_idempotency_key",
                            postgresql_where=sa.text("merchant_id IS NULL"),
                            sqlite_where=sa.text("merchant_id IS NULL"))
    with op.batch_alter_table("insight_results", schema=None) as batch_op:
        batch_op.drop_index("ix_insight_results_scope_run")
    op.drop_table("insight_results")
    op.drop_table("insight_runs")
