"""Programs: rewards and vouchers, stamp cards, partner quests (coalition/programs/reward_models.py).

Revision ID: 0012_rewards_stamps_quests
Revises: 0011_tiers_campaigns
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_rewards_stamps_quests"
down_revision: str | Sequence[str] | None = "0011_tiers_campaigns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("status = 'ISSUED'")
_USED = sa.text("use_key IS NOT NULL")
_FUNDING = sa.Enum("NETWORK", "PARTNERS", name="questfunding", native_enum=False, length=16)
_STATUS = sa.Enum("ISSUED", "USED", "EXPIRED", "CANCELLED", name="voucherstatus", native_enum=False, length=16)


def upgrade() -> None:
    op.create_table('quests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('visits_required', sa.BigInteger(), nullable=False),
    sa.Column('window_days', sa.BigInteger(), nullable=False),
    sa.Column('bonus_points', sa.BigInteger(), nullable=False),
    sa.Column('funding', _FUNDING, nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('bonus_points > 0', name=op.f('ck_quests_bonus_points_positive')),
    sa.CheckConstraint('visits_required > 0', name=op.f('ck_quests_visits_required_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quests')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_quests_idempotency_key'))
    )
    op.create_table('quest_merchants',
    sa.Column('quest_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_quest_merchants_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['quest_id'], ['quests.id'], name=op.f('fk_quest_merchants_quest_id_quests')),
    sa.PrimaryKeyConstraint('quest_id', 'merchant_id', name=op.f('pk_quest_merchants'))
    )
    op.create_index(op.f('ix_quest_merchants_merchant_id'), 'quest_merchants', ['merchant_id'], unique=False)
    op.create_table('rewards',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('points_cost', sa.BigInteger(), nullable=False),
    sa.Column('stock_total', sa.BigInteger(), nullable=True),
    sa.Column('stock_left', sa.BigInteger(), nullable=True),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('voucher_valid_days', sa.BigInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('points_cost >= 0', name=op.f('ck_rewards_points_cost_non_negative')),
    sa.CheckConstraint('stock_left IS NULL OR stock_left >= 0', name=op.f('ck_rewards_stock_non_negative')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_rewards_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rewards')),
    sa.UniqueConstraint('merchant_id', 'idempotency_key', name=op.f('uq_rewards_merchant_id_idempotency_key'))
    )
    op.create_index('ix_rewards_merchant_id_id', 'rewards', ['merchant_id', 'id'], unique=False)
    op.create_table('quest_completions',
    sa.Column('quest_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_quest_completions_member_id_members')),
    sa.ForeignKeyConstraint(['quest_id'], ['quests.id'], name=op.f('fk_quest_completions_quest_id_quests')),
    sa.PrimaryKeyConstraint('quest_id', 'member_id', name=op.f('pk_quest_completions'))
    )
    op.create_index(op.f('ix_quest_completions_member_id'), 'quest_completions', ['member_id'], unique=False)
    op.create_table('quest_visits',
    sa.Column('quest_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('last_visit_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_quest_visits_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_quest_visits_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['quest_id'], ['quests.id'], name=op.f('fk_quest_visits_quest_id_quests')),
    sa.PrimaryKeyConstraint('quest_id', 'member_id', 'merchant_id', name=op.f('pk_quest_visits'))
    )
    op.create_table('stamp_cards',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('stamps_required', sa.BigInteger(), nullable=False),
    sa.Column('min_purchase_minor', sa.BigInteger(), nullable=False),
    sa.Column('reward_id', sa.BigInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('stamps_required > 0', name=op.f('ck_stamp_cards_stamps_required_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_stamp_cards_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_stamp_cards_reward_id_rewards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stamp_cards')),
    sa.UniqueConstraint('merchant_id', 'idempotency_key', name=op.f('uq_stamp_cards_merchant_id_idempotency_key'))
    )
    op.create_index('ix_stamp_cards_merchant_id_id', 'stamp_cards', ['merchant_id', 'id'], unique=False)
    op.create_table('stamp_progress',
    sa.Column('card_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('total_stamps', sa.BigInteger(), nullable=False),
    sa.Column('completed_cards', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['stamp_cards.id'], name=op.f('fk_stamp_progress_card_id_stamp_cards')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_stamp_progress_member_id_members')),
    sa.PrimaryKeyConstraint('card_id', 'member_id', name=op.f('pk_stamp_progress'))
    )
    op.create_index(op.f('ix_stamp_progress_member_id'), 'stamp_progress', ['member_id'], unique=False)
    op.create_table('stamps',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.BigInteger(), nullable=False),
    sa.Column('member_id', sa.BigInteger(), nullable=False),
    sa.Column('earn_entry_id', sa.BigInteger(), nullable=False),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['stamp_cards.id'], name=op.f('fk_stamps_card_id_stamp_cards')),
    sa.ForeignKeyConstraint(['earn_entry_id'], ['entries.id'], name=op.f('fk_stamps_earn_entry_id_entries')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_stamps_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stamps')),
    sa.UniqueConstraint('card_id', 'earn_entry_id', name=op.f('uq_stamps_card_id_earn_entry_id'))
    )
    op.create_index(op.f('ix_stamps_earn_entry_id'), 'stamps', ['earn_entry_id'], unique=False)
    op.create_table('vouchers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('reward_id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('member_id', sa.BigInteger(), nullable=False),
    sa.Column('status', _STATUS, nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('redeem_entry_id', sa.BigInteger(), nullable=True),
    sa.Column('reversal_entry_id', sa.BigInteger(), nullable=True),
    sa.Column('stamp_card_id', sa.BigInteger(), nullable=True),
    sa.Column('card_number', sa.BigInteger(), nullable=True),
    sa.Column('claim_scope', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('use_key', sa.String(length=128), nullable=True),
    sa.Column('use_hash', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_vouchers_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_vouchers_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['redeem_entry_id'], ['entries.id'], name=op.f('fk_vouchers_redeem_entry_id_entries')),
    sa.ForeignKeyConstraint(['reversal_entry_id'], ['entries.id'], name=op.f('fk_vouchers_reversal_entry_id_entries')),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_vouchers_reward_id_rewards')),
    sa.ForeignKeyConstraint(['stamp_card_id'], ['stamp_cards.id'], name=op.f('fk_vouchers_stamp_card_id_stamp_cards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vouchers')),
    sa.UniqueConstraint('claim_scope', 'idempotency_key', name=op.f('uq_vouchers_claim_scope_idempotency_key')),
    sa.UniqueConstraint('code', name=op.f('uq_vouchers_code')),
    sa.UniqueConstraint('redeem_entry_id', name=op.f('uq_vouchers_redeem_entry_id'))
    )
    op.create_index('ix_vouchers_member_id_id', 'vouchers', ['member_id', 'id'], unique=False)
    op.create_index('ix_vouchers_open', 'vouchers', ['expires_at'],
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.create_index('uq_vouchers_use_key', 'vouchers', ['merchant_id', 'use_key'], unique=True,
                    postgresql_where=_USED, sqlite_where=_USED)


def downgrade() -> None:
    op.drop_index('uq_vouchers_use_key', table_name='vouchers',
                  postgresql_where=_USED, sqlite_where=_USED)
    op.drop_index('ix_vouchers_open', table_name='vouchers',
                  postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.drop_index('ix_vouchers_member_id_id', table_name='vouchers')
    op.drop_table('vouchers')
    op.drop_index(op.f('ix_stamps_earn_entry_id'), table_name='stamps')
    op.drop_table('stamps')
    op.drop_index(op.f('ix_stamp_progress_member_id'), table_name='stamp_progress')
    op.drop_table('stamp_progress')
    op.drop_index('ix_stamp_cards_merchant_id_id', table_name='stamp_cards')
    op.drop_table('stamp_cards')
    op.drop_table('quest_visits')
    op.drop_index(op.f('ix_quest_completions_member_id'), table_name='quest_completions')
    op.drop_table('quest_completions')
    op.drop_index('ix_rewards_merchant_id_id', table_name='rewards')
    op.drop_table('rewards')
    op.drop_index(op.f('ix_quest_merchants_merchant_id'), table_name='quest_merchants')
    op.drop_table('quest_merchants')
    op.drop_table('quests')
