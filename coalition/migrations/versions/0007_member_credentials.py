"""Member credentials in their own table (revocable, rotatable, claim codes) and member disputes.

Revision ID: 0007_member_credentials
Revises: 0006_partial_null_indexes
Create Date: 2026-12-06

- ``member_credentials``: a member's tokens and one-time claim codes, stored as SHA-256
  (``coalition.members.credentials``).
- Every member's ``members.token_hash`` is copied into it as a TOKEN credential, so the
  tokens members hold today keep working; then the column is dropped (tokens were derived
  from the member id, could not be revoked, and the enrolling merchant could get them again
  by replaying ``enrollMember``: issue 13, item 3). To retire those old tokens, revoke them
  (``revokeMemberTokens``, or an admin's ``issueMemberClaimCode``).
- ``disputes``: a member's disputes of its own redemptions (``coalition.members.disputes``).

Downgrade puts ``token_hash`` back from each member's oldest live token (a placeholder
that matches no token where there is none) and drops both tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_member_credentials"
down_revision: str | Sequence[str] | None = "0006_partial_null_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "member_credentials",
        sa.Column("id", _ID, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Enum("TOKEN", "CLAIM", name="credentialkind", native_enum=False, length=16),
                  nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_credentials_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_credentials")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_member_credentials_secret_hash")),
    )
    with op.batch_alter_table("member_credentials", schema=None) as batch_op:
        batch_op.create_index("ix_member_credentials_member_id_kind", ["member_id", "kind"], unique=False)
    op.execute(
        "INSERT INTO member_credentials (member_id, kind, secret_hash, label, created_at) "
        "SELECT id, 'TOKEN', token_hash, 'before 0007', created_at FROM members"
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_members_token_hash"), type_="unique")
        batch_op.drop_column("token_hash")

    op.create_table(
        "disputes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.Enum("OPEN", "RESOLVED", "DISMISSED", name="disputestatus", native_enum=False,
                                    length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name=op.f("fk_disputes_entry_id_entries")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_disputes_member_id_members")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_disputes_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_disputes_entry_id")),
        sa.UniqueConstraint("member_id", "idempotency_key", name=op.f("uq_disputes_member_id_idempotency_key")),
    )
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disputes_merchant_id"), ["merchant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disputes_merchant_id"))
    op.drop_table("disputes")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE members SET token_hash = COALESCE((SELECT c.secret_hash FROM member_credentials c "
        "WHERE c.member_id = members.id AND c.kind = 'TOKEN' AND c.revoked_at IS NULL ORDER BY c.id LIMIT 1), "
        "'none:' || CAST(id AS VARCHAR(20)))"
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.alter_column("token_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_members_token_hash"), ["token_hash"])
    with op.batch_alter_table("member_credentials", schema=None) as batch_op:
        batch_op.drop_index("ix_member_credentials_member_id_kind")
    op.drop_table("member_credentials")
