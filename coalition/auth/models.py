from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class Role(enum.StrEnum):
    ADMIN = "ADMIN"
    MERCHANT = "MERCHANT"
    MEMBER = "MEMBER"


class ApiKey(Base):
    """An admin or merchant API key. Only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[intpk]
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    merchant_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("merchants.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
