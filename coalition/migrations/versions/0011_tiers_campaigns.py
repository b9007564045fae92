"""Status tiers and campaigns (issue 15).

Revision ID: 0011_tiers_campaigns
Revises: 0008_trust_ledger
Create Date: 2026-12-07

- ``tier_policies``: the network's tier policy versions (admin, appended).
- ``member_tiers``: each member's kept tier state (a review writes it).
- ``earn_bonuses``: the points programs added to an earn (tier, campaign).
- ``campaigns`` and ``campaign_audience``: a merchant's campaigns and their fixed audience,
  treated or held out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_tiers_campaigns"
down_revision: str | Sequence[str] | None = "0010_gift_cards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tier_policies",
        sa.Column("id", _ID, nullable=False),
        sa.Column("tiers", sa.Text(), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("window_months", sa.BigInteger(), nullable=False),
        sa.Column("grace_days", sa.BigInteger(), nullable=False),
        sa.Column("bonus_funder", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_policies")),
    )
    op.create_table(
        "member_tiers",
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("multiplier_percent", sa.BigInteger(), nullable=False),
        sa.Column("qualifying_points", sa.BigInteger(), nullable=False),
        sa.Column("since", _TS, nullable=False),
        sa.Column("valid_until", _TS, nullable=False),
        sa.Column("policy_id", sa.BigInteger(), nullable=True),
        sa.Column("evaluated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_tiers_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_tiers")),
    )
    op.create_table(
        "earn_bonuses",
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("base_points", sa.BigInteger(), nullable=False),
        sa.Column("tier_points", sa.BigInteger(), nullable=False),
        sa.Column("tier_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("campaign_points", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], name=op.f("fk_earn_bonuses_entry_id_entries")),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_earn_bonuses")),
    )
    op.create_index("ix_earn_bonuses_merchant_id_created_at", "earn_bonuses", ["merchant_id", "created_at"])
    op.create_table(
        "campaigns",
        sa.Column("id", _ID, nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("multiplier_percent", sa.BigInteger(), nullable=True),
        sa.Column("bonus_points", sa.BigInteger(), nullable=True),
        sa.Column("segment", sa.String(length=16), nullable=True),
        sa.Column("control_percent", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_campaigns_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("merchant_id", "idempotency_key", name=op.f("uq_campaigns_merchant_id_idempotency_key")),
    )
    op.create_index("ix_campaigns_merchant_id_ends_at", "campaigns", ["merchant_id", "ends_at"])
    op.create_table(
        "campaign_audience",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("treated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_audience_campaign_id_campaigns")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_campaign_audience_member_id_members")),
        sa.PrimaryKeyConstraint("campaign_id", "member_id", name=op.f("pk_campaign_audience")),
    )
    op.create_index("ix_campaign_audience_member_id", "campaign_audience", ["member_id", "campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_audience_member_id", table_name="campaign_audience")
    op.drop_table("campaign_audience")
    op.drop_index("ix_campaigns_merchant_id_ends_at", table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_index("ix_earn_bonuses_merchant_id_created_at", table_name="earn_bonuses")
    op.drop_table("earn_bonuses")
    op.drop_table("member_tiers")
    op.drop_table("tier_policies")
