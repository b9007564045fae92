"""Gift cards: the ledger's second asset (money), and the gift-card window of settlement batches.

Revision ID: 0010_gift_cards
Revises: 0008_trust_ledger
Create Date: 2026-12-07

- ``gift_cards``, ``gift_card_entries``, ``gift_card_postings``, ``gift_card_holds``
  (``giftcards/models.py``).
- ``settlement_batches.through_gift_entry_id``: the gift-card entries a batch settled.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_gift_cards"
down_revision: str | Sequence[str] | None = "0008_trust_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MEMBER = sa.text("member_id IS NOT NULL")
_REVERSES = sa.text("reverses_id IS NOT NULL")
_OPEN = sa.text("status = 'AUTHORIZED'")


def upgrade() -> None:
    op.create_table(
        "gift_cards",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("issuer_merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("initial_minor", sa.BigInteger(), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("held_minor", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance_minor >= 0", name=op.f("ck_gift_cards_balance_non_negative")),
        sa.CheckConstraint("held_minor >= 0", name=op.f("ck_gift_cards_held_non_negative")),
        sa.ForeignKeyConstraint(["issuer_merchant_id"], ["merchants.id"],
                                name=op.f("fk_gift_cards_issuer_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_gift_cards_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_cards")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_gift_cards_code_hash")),
    )
    op.create_index("ix_gift_cards_issuer", "gift_cards", ["issuer_merchant_id", "id"])
    op.create_index("ix_gift_cards_member", "gift_cards", ["member_id"], postgresql_where=_MEMBER,
                    sqlite_where=_MEMBER)
    op.create_table(
        "gift_card_entries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.Enum("ISSUE", "REDEEM", "HOLD", "CAPTURE", "VOID", "REFUND", "EXPIRY",
                                  name="giftentrykind", native_enum=False, length=16), nullable=False),
        sa.Column("card_id", sa.BigInteger(), nullable=False),
        sa.Column("issuer_merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("spent_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("reverses_id", sa.BigInteger(), nullable=True),
        sa.Column("hold_id", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["gift_cards.id"], name=op.f("fk_gift_card_entries_card_id_gift_cards")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_gift_card_entries_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["reverses_id"], ["gift_card_entries.id"],
                                name=op.f("fk_gift_card_entries_reverses_id_gift_card_entries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_card_entries")),
        sa.UniqueConstraint("merchant_id", "idempotency_key",
                            name=op.f("uq_gift_card_entries_merchant_id_idempotency_key")),
    )
    op.create_index("ix_gift_card_entries_card_id", "gift_card_entries", ["card_id", "id"])
    op.create_index("uq_gift_card_entries_reverses_id", "gift_card_entries", ["reverses_id"], unique=True,
                    postgresql_where=_REVERSES, sqlite_where=_REVERSES)
    op.create_table(
        "gift_card_postings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("account", sa.Enum("CASH", "CARD", "CARD_HELD", "SPENT", "BREAKAGE", name="giftaccount",
                                     native_enum=False, length=16), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["gift_card_entries.id"],
                                name=op.f("fk_gift_card_postings_entry_id_gift_card_entries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_card_postings")),
    )
    op.create_index("ix_gift_card_postings_account", "gift_card_postings", ["account", "account_id"])
    op.create_index(op.f("ix_gift_card_postings_entry_id"), "gift_card_postings", ["entry_id"])
    op.create_table(
        "gift_card_holds",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("card_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("captured_minor", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.Enum("AUTHORIZED", "CAPTURED", "VOIDED", "EXPIRED", name="giftholdstatus",
                                    native_enum=False, length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_gift_card_holds_amount_positive")),
        sa.ForeignKeyConstraint(["id"], ["gift_card_entries.id"], name=op.f("fk_gift_card_holds_id_gift_card_entries")),
        sa.ForeignKeyConstraint(["card_id"], ["gift_cards.id"], name=op.f("fk_gift_card_holds_card_id_gift_cards")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_gift_card_holds_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_card_holds")),
    )
    op.create_index(op.f("ix_gift_card_holds_card_id"), "gift_card_holds", ["card_id"])
    op.create_index("ix_gift_card_holds_open", "gift_card_holds", ["expires_at"], postgresql_where=_OPEN,
                    sqlite_where=_OPEN)
    with op.batch_alter_table("settlement_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("through_gift_entry_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("settlement_batches", schema=None) as batch_op:
        batch_op.drop_column("through_gift_entry_id")
    op.drop_index("ix_gift_card_holds_open", table_name="gift_card_holds")
    op.drop_index(op.f("ix_gift_card_holds_card_id"), table_name="gift_card_holds")
    op.drop_table("gift_card_holds")
    op.drop_index(op.f("ix_gift_card_postings_entry_id"), table_name="gift_card_postings")
    op.drop_index("ix_gift_card_postings_account", table_name="gift_card_postings")
    op.drop_table("gift_card_postings")
    op.drop_index("uq_gift_card_entries_reverses_id", table_name="gift_card_entries")
    op.drop_index("ix_gift_card_entries_card_id", table_name="gift_card_entries")
    op.drop_table("gift_card_entries")
    op.drop_index("ix_gift_cards_member", table_name="gift_cards")
    op.drop_index("ix_gift_cards_issuer", table_name="gift_cards")
    op.drop_table("gift_cards")
