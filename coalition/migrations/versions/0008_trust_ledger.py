"""Trust between partners, in the ledger: kept refusals, proofs of presence, the allowance.

Revision ID: 0008_trust_ledger
Revises: 0007_member_credentials
Create Date: 2026-12-06

- ``ledger_refusals``: a refused write's outcome under its idempotency key (ledger/refusals.py).
- ``presence_proofs``: each proof of presence a redemption or hold used, once (ledger/presence.py).
- ``entries``: a partial index over redemptions for the 24 h allowance without proof.
- ``network_policies.redeem_without_proof_points``: the allowance, versioned with the policy
  (NULL on versions stored before: the setting COALITION_REDEEM_WITHOUT_PROOF_POINTS).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_trust_ledger"
down_revision: str | Sequence[str] | None = "0007_member_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REDEEM = sa.text("kind = 'REDEEM'")
_WRONG_PROOF = sa.text("code = 'INVALID_MEMBER_PROOF'")


def upgrade() -> None:
    op.create_table(
        "ledger_refusals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_ledger_refusals_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_refusals")),
        sa.UniqueConstraint("merchant_id", "idempotency_key",
                            name=op.f("uq_ledger_refusals_merchant_id_idempotency_key")),
    )
    op.create_index("ix_ledger_refusals_created_at", "ledger_refusals", ["created_at"])
    op.create_index("ix_ledger_refusals_wrong_proofs", "ledger_refusals", ["member_id", "merchant_id", "created_at"],
                    postgresql_where=_WRONG_PROOF, sqlite_where=_WRONG_PROOF)
    op.create_table(
        "presence_proofs",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_presence_proofs_member_id_members")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_presence_proofs_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name=op.f("fk_presence_proofs_entry_id_entries")),
        sa.PrimaryKeyConstraint("member_id", "step", name=op.f("pk_presence_proofs")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_presence_proofs_entry_id")),
    )
    op.create_index("ix_entries_redeem_window", "entries", ["member_id", "merchant_id", "created_at"],
                    postgresql_where=_REDEEM, sqlite_where=_REDEEM)
    with op.batch_alter_table("network_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redeem_without_proof_points", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("network_policies", schema=None) as batch_op:
        batch_op.drop_column("redeem_without_proof_points")
    op.drop_index("ix_entries_redeem_window", table_name="entries")
    op.drop_table("presence_proofs")
    op.drop_index("ix_ledger_refusals_wrong_proofs", table_name="ledger_refusals")
    op.drop_index("ix_ledger_refusals_created_at", table_name="ledger_refusals")
    op.drop_table("ledger_refusals")
