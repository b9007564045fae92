"""Campaign tables.

- ``campaigns``: a merchant's offer (a multiplier or a bonus per earn) to a segment of its
  members for a period; written once, never updated.
- ``campaign_audience``: the audience fixed when the campaign is created, each member either
  treated or held out (control) by a keyed hash of campaign and member id (stable, not
  guessable). The lift is measured on exactly these members.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
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
