"""Console users and their browser sessions (migration 0015). Fraud reviews are the analysis's (network/reviews.py)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class StaffRole(enum.StrEnum):
    OWNER = "OWNER"  # a merchant's owner: every console page of that merchant
    CASHIER = "CASHIER"  # the till only
    ADMIN = "ADMIN"  # the network's operator: /admin


class ConsoleUser(Base):
    """Someone who signs in with e-mail and password. Only an argon2id hash of the password is kept."""

    __tablename__ = "console_users"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lower-cased
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[StaffRole] = mapped_column(Enum(StaffRole, native_enum=False, length=16))
    merchant_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("merchants.id"), index=True)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[dt.datetime | None]


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random id; only its SHA-256 is stored."""

    __tablename__ = "console_sessions"

    id: Mapped[intpk]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("console_users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]  # absolute: created_at + session_absolute_s
    revoked_at: Mapped[dt.datetime | None]
