"""Webhook endpoints and their deliveries (the outbox).

A delivery row is written in the same transaction as the change it reports
(:mod:`coalition.webhooks.outbox`), one per endpoint that wants the event; its id orders the
events of a member, and the worker sends them in that order (:mod:`coalition.webhooks.delivery`).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class DeliveryStatus(enum.StrEnum):
    PENDING = "PENDING"  # to be sent (again) at next_attempt_at
    DELIVERED = "DELIVERED"  # a 2xx answer
    FAILED = "FAILED"  # every try failed for the retry window: the endpoint was disabled


class WebhookEndpoint(Base):
    """Where a merchant (``merchant_id``) or the network's admin (NULL: every merchant's events) is told."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key"),)

    id: Mapped[intpk]
    merchant_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("merchants.id"), index=True)
    owner: Mapped[str] = mapped_column(String(40))  # "merchant:<id>" or "admin": the idempotency scope
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[str] = mapped_column(String(1000))  # ",points.earned,hold.captured," (commas around each)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None]
    disabled_at: Mapped[dt.datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))


class WebhookDelivery(Base):
    """One event for one endpoint: the outbox row, then its delivery's state."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_pending", "next_attempt_at",
              postgresql_where=text("status = 'PENDING'"), sqlite_where=text("status = 'PENDING'")),
        Index("ix_webhook_deliveries_order", "endpoint_id", "member_id", "id"),
    )

    id: Mapped[intpk]
    endpoint_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("webhook_endpoints.id"))
    merchant_id: Mapped[int | None]
    member_id: Mapped[int | None]
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)  # JSON of plain values; the body is built from it on every try
    status: Mapped[DeliveryStatus] = mapped_column(Enum(DeliveryStatus, native_enum=False, length=16),
                                                   default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    first_attempt_at: Mapped[dt.datetime | None]
    last_attempt_at: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[dt.datetime | None]
