from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, Enum, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class MerchantStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class Merchant(Base):
    """A partner shop. Merchant balances are never stored: they are sums of postings."""

    __tablename__ = "merchants"
    __table_args__ = (CheckConstraint("earn_rate_points_per_unit >= 0", name="earn_rate_non_negative"),
                      Index("uq_merchants_idempotency_key", "idempotency_key", unique=True))

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(120))
    category: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[MerchantStatus] = mapped_column(
        Enum(MerchantStatus, native_enum=False, length=16), default=MerchantStatus.ACTIVE
    )
    earn_rate_points_per_unit: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    suspended_at: Mapped[dt.datetime | None]
    # onboardMerchant's key (the network's one key space) and its request's fingerprint; NULL: onboarded
    # without a key, or before migration 0018 (coalition/partners/service.py ONBOARDING_KEYS).
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
