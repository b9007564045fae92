"""Campaign tables.

- ``campaigns``: a merchant's offer (a multiplier or a bonus per earn) to a segment of its
  members for a period; written once, never updated.
- ``campaign_audience``: the audience fixed when the campaign is created, each member either
  treated or held out (control) by a keyed hash of campaign and member id (stable, not
  guessable). The lift is measured on exactly these members.
- ``campaign_result_snapshots``: the latest result of each campaign (treated vs control, the
  lift), computed by the worker's ``campaigns`` job or on a page's first read, and read by the
  console page and the API instead of recounting the ledger (coalition/programs/campaign_snapshots.py).
  One row per campaign, replaced by a newer ``as_of`` only; ``final`` once the result has
  settled (no refund may change it any more): then it is never recomputed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Double, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        Index("ix_campaigns_merchant_id_ends_at", "merchant_id", "ends_at"),
    )

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # MULTIPLIER or BONUS
    multiplier_percent: Mapped[int | None]
    bonus_points: Mapped[int | None]
    segment: Mapped[str | None] = mapped_column(String(16))
    control_percent: Mapped[int]
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CampaignAudience(Base):
    __tablename__ = "campaign_audience"
    # The earn path probes (member, campaign) for treated members of the merchant's active campaigns.
    __table_args__ = (Index("ix_campaign_audience_member_id", "member_id", "campaign_id"),)

    campaign_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("campaigns.id"), primary_key=True,
                                             autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"), primary_key=True,
                                           autoincrement=False)
    treated: Mapped[bool]


class CampaignResultSnapshot(Base):
    __tablename__ = "campaign_result_snapshots"

    campaign_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("campaigns.id"), primary_key=True,
                                             autoincrement=False)
    as_of: Mapped[dt.datetime]  # the figures count the ledger up to this moment (the campaign's end at most)
    computed_at: Mapped[dt.datetime]
    final: Mapped[bool]  # as_of is past the campaign's end plus the settle time: never recomputed
    min_group: Mapped[int]  # the minimum group size the lift was computed with
    treated_members: Mapped[int]
    control_members: Mapped[int]
    treated_spend_minor: Mapped[int]
    control_spend_minor: Mapped[int]
    treated_visits: Mapped[int]
    control_visits: Mapped[int]
    treated_partner_visits: Mapped[int]
    control_partner_visits: Mapped[int]
    bonus_points: Mapped[int]
    spend_lift_percent: Mapped[float | None] = mapped_column(Double)
    spend_p_value: Mapped[float | None] = mapped_column(Double)
    visits_lift_percent: Mapped[float | None] = mapped_column(Double)
    visits_p_value: Mapped[float | None] = mapped_column(Double)
    partner_visits_lift_percent: Mapped[float | None] = mapped_column(Double)
    partner_visits_p_value: Mapped[float | None] = mapped_column(Double)
