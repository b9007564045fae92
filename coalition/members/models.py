from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class Member(Base):
    """A customer of the network, known everywhere by one loyalty ID.

    ``balance`` (spendable), ``held`` and ``owed`` are the only contended values in the
    ledger; every ledger write locks this row first (see ``coalition.ledger.service``).
    Contact data is Fernet-encrypted; the ``*_index`` columns are keyed HMACs (blind
    index) so a duplicate can be found without decrypting anything. The ``*_fingerprint``
    columns are keyed HMACs of a coarser, canonical form (``coalition.members.contact``) that
    one person's variants share: not unique, read by the fraud analysis; NULL on rows enrolled
    before migration 0004 until the next analysis run fills them in
    (``coalition.members.service.backfill_fingerprints``).
    """

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_non_negative"),
        CheckConstraint("held >= 0", name="held_non_negative"),
        CheckConstraint("owed >= 0", name="owed_non_negative"),
        UniqueConstraint("enrolled_by_merchant_id", "enroll_idempotency_key"),
    )

    id: Mapped[intpk]
    loyalty_id: Mapped[str] = mapped_column(String(16), unique=True)
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("members.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    balance: Mapped[int] = mapped_column(default=0)
    held: Mapped[int] = mapped_column(default=0)
    owed: Mapped[int] = mapped_column(default=0)
    lifetime_points: Mapped[int] = mapped_column(default=0)
    enrolled_by_merchant_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    enroll_idempotency_key: Mapped[str | None] = mapped_column(String(128))
    enroll_request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Last: migration 0004 added them to existing tables, and ADD COLUMN appends.
    email_fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
