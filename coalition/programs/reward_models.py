"""Tables of the programs a shop runs on the ledger: rewards and vouchers, stamp cards, partner quests.

- ``rewards``: what a merchant offers for points; ``stock_left`` (NULL: unlimited) is taken by a
  conditional UPDATE, as the ledger takes a balance, and a CHECK keeps it >= 0.
- ``vouchers``: a claimed reward (or a full stamp card's). A claim's points are a REDEEM entry at
  the reward's merchant (``redeem_entry_id``); an expired voucher's refund is that entry's
  REVERSAL (``reversal_entry_id``). ``status`` moves once from ISSUED.
- ``stamp_cards``, ``stamp_progress`` (one row per card and member), ``stamps`` (one per earn
  that stamped a card: the earn's entry id makes a stamp happen once, and lets a reversal find it).
- ``quests``, ``quest_merchants``, ``quest_visits`` (a member's latest visit to each shop of a
  quest) and ``quest_completions`` (once per member and quest).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class VoucherStatus(enum.StrEnum):
    ISSUED = "ISSUED"
    USED = "USED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class QuestFunding(enum.StrEnum):
    NETWORK = "NETWORK"  # the network issues the bonus (issuer NULL)
    PARTNERS = "PARTNERS"  # the quest's shops issue it, split evenly (coalition/programs/quests.py)


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16)


class Reward(Base):
    __tablename__ = "rewards"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        CheckConstraint("points_cost >= 0", name="points_cost_non_negative"),
        CheckConstraint("stock_left IS NULL OR stock_left >= 0", name="stock_non_negative"),
        Index("ix_rewards_merchant_id_id", "merchant_id", "id"),
    )

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    points_cost: Mapped[int]
    stock_total: Mapped[int | None]
    stock_left: Mapped[int | None]
    valid_from: Mapped[dt.datetime | None]
    valid_until: Mapped[dt.datetime | None]
    voucher_valid_days: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Voucher(Base):
    __tablename__ = "vouchers"
    __table_args__ = (
        # A claim happens once per key: the scope is the claiming merchant ("merchant:<id>"), the
        # member ("member:<id>") or a stamp card ("stamp").
        UniqueConstraint("claim_scope", "idempotency_key"),
        Index("uq_vouchers_use_key", "merchant_id", "use_key", unique=True,
              postgresql_where=text("use_key IS NOT NULL"), sqlite_where=text("use_key IS NOT NULL")),
        # The expiry job reads only the open vouchers.
        Index("ix_vouchers_open", "expires_at", postgresql_where=text("status = 'ISSUED'"),
              sqlite_where=text("status = 'ISSUED'")),
        Index("ix_vouchers_member_id_id", "member_id", "id"),
    )

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(16), unique=True)
    reward_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("rewards.id"))
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))  # the reward's
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"))
    status: Mapped[VoucherStatus] = mapped_column(_enum(VoucherStatus), default=VoucherStatus.ISSUED)
    points: Mapped[int]  # what the claim took (0 for a stamp card's voucher)
    redeem_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("entries.id"), unique=True)
    reversal_entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("entries.id"))
    stamp_card_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("stamp_cards.id"))
    card_number: Mapped[int | None]
    claim_scope: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    use_key: Mapped[str | None] = mapped_column(String(128))
    use_hash: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StampCard(Base):
    __tablename__ = "stamp_cards"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        CheckConstraint("stamps_required > 0", name="stamps_required_positive"),
        Index("ix_stamp_cards_merchant_id_id", "merchant_id", "id"),
    )

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(100))
    stamps_required: Mapped[int]
    min_purchase_minor: Mapped[int]
    reward_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("rewards.id"))
    active: Mapped[bool] = mapped_column(default=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StampProgress(Base):
    """``total_stamps - completed_cards * stamps_required`` stamps on the current card (below 0 while a
    reversed purchase's stamp is owed: the card's voucher was used already)."""

    __tablename__ = "stamp_progress"

    card_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("stamp_cards.id"), primary_key=True,
                                         autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"), primary_key=True,
                                           autoincrement=False, index=True)
    total_stamps: Mapped[int] = mapped_column(default=0)
    completed_cards: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Stamp(Base):
    __tablename__ = "stamps"
    __table_args__ = (UniqueConstraint("card_id", "earn_entry_id"),)

    id: Mapped[intpk]
    card_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("stamp_cards.id"))
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"))
    earn_entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.id"), index=True)
    removed: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Quest(Base):
    __tablename__ = "quests"
    __table_args__ = (
        CheckConstraint("visits_required > 0", name="visits_required_positive"),
        CheckConstraint("bonus_points > 0", name="bonus_points_positive"),
    )

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(100))
    visits_required: Mapped[int]
    window_days: Mapped[int]
    bonus_points: Mapped[int]
    funding: Mapped[QuestFunding] = mapped_column(_enum(QuestFunding))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)  # admin-scoped
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class QuestMerchant(Base):
    __tablename__ = "quest_merchants"

    quest_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("quests.id"), primary_key=True, autoincrement=False)
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"), primary_key=True,
                                             autoincrement=False, index=True)


class QuestVisit(Base):
    __tablename__ = "quest_visits"

    quest_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("quests.id"), primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"), primary_key=True,
                                           autoincrement=False)
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"), primary_key=True,
                                             autoincrement=False)
    last_visit_at: Mapped[dt.datetime]


class QuestCompletion(Base):
    __tablename__ = "quest_completions"

    quest_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("quests.id"), primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"), primary_key=True,
                                           autoincrement=False, index=True)
    completed_at: Mapped[dt.datetime]
