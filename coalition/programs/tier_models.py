"""Status tier tables.

- ``tier_policies``: the network's tier policy, versions appended by an admin (the newest is in
  force). The tiers are one JSON text (``[{"name", "thresholdPoints", "multiplierPercent"}]``).
- ``member_tiers``: each member's kept tier state (tier, since, valid until), written only by a
  review (``coalition.programs.tiers.review_tiers``). The tier itself is computed from EARN
  entries and the policy; this row only remembers what a review decided, for the grace period
  and for the earn path's multiplier (one index probe). No entry is ever rewritten.
- ``earn_bonuses``: the part of an earn's points that programs added (tier multiplier, campaign
  multiplier or bonus), one row per earn that got any, written in the earn's transaction.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class TierPolicyVersion(Base):
    __tablename__ = "tier_policies"
    __table_args__ = (Index("uq_tier_policies_idempotency_key", "idempotency_key", unique=True),)

    id: Mapped[intpk]
    tiers: Mapped[str] = mapped_column(Text)  # JSON, lowest tier first
    window: Mapped[str] = mapped_column(String(16))  # ROLLING or CALENDAR_YEAR
    window_months: Mapped[int]
    grace_days: Mapped[int]
    bonus_funder: Mapped[str] = mapped_column(String(16))  # MERCHANT (the earning one) or NETWORK
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))  # NULL: written before keys (0017)
    request_hash: Mapped[str | None] = mapped_column(String(64))


class MemberTier(Base):
    __tablename__ = "member_tiers"

    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"), primary_key=True,
                                           autoincrement=False)
    tier: Mapped[str] = mapped_column(String(32))
    multiplier_percent: Mapped[int]  # the tier's multiplier under the policy the review applied
    qualifying_points: Mapped[int]
    since: Mapped[dt.datetime]
    valid_until: Mapped[dt.datetime]
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    evaluated_at: Mapped[dt.datetime]


class EarnBonus(Base):
    __tablename__ = "earn_bonuses"
    __table_args__ = (Index("ix_earn_bonuses_merchant_id_created_at", "merchant_id", "created_at"),)

    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.id"), primary_key=True,
                                          autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    base_points: Mapped[int]
    tier_points: Mapped[int]  # in the earn's own points when the merchant funds them
    tier_entry_id: Mapped[int | None] = mapped_column(BigInteger)  # the network's BONUS entry when it funds them
    campaign_points: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
