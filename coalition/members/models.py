from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class Member(Base):
    """A customer of the network, known everywhere by one loyalty ID.

    ``balance`` (spendable), ``held`` and ``owed`` are the only contended values in the
    ledger; every ledger write locks this row first (see ``coalition.ledger.service``).
    Credentials live in ``member_credentials`` (migration 0007 moved the old ``token_hash``
    there). Contact data is Fernet-encrypted; the ``*_index`` columns are keyed HMACs (blind
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
        Index("ix_members_enrolled_by_merchant_id", "enrolled_by_merchant_id"),  # a merchant's customers (0015)
    )

    id: Mapped[intpk]
    loyalty_id: Mapped[str] = mapped_column(String(16), unique=True)
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("members.id"), index=True)
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


class CredentialKind(enum.StrEnum):
    TOKEN = "TOKEN"  # a member token (cmt_...): Authorization: Bearer
    CLAIM = "CLAIM"  # a one-time claim code, exchanged once for a TOKEN (coalition.members.credentials)


class MemberCredential(Base):
    """A member's secret, stored as its SHA-256 like an API key: tokens and one-time claim codes.

    A credential works while ``revoked_at`` is NULL and ``expires_at`` is NULL or later; a claim
    code also needs ``used_at`` NULL (claiming sets it in one conditional UPDATE, so a code is
    exchanged at most once under any concurrency).
    """

    __tablename__ = "member_credentials"
    __table_args__ = (Index("ix_member_credentials_member_id_kind", "member_id", "kind"),)

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"))
    kind: Mapped[CredentialKind] = mapped_column(Enum(CredentialKind, native_enum=False, length=16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class DisputeStatus(enum.StrEnum):
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"  # the network agreed with the member (and reverses or adjusts by hand)
    DISMISSED = "DISMISSED"  # the transaction stands


class Dispute(Base):
    """A member's objection to one of its own redemptions (``coalition.members.disputes``).

    One dispute per transaction (``entry_id`` unique); the member's idempotency key makes a
    retry return the same dispute. ``merchant_id`` is the merchant that made the transaction,
    copied so an admin's list does not join the ledger.
    """

    __tablename__ = "disputes"
    __table_args__ = (UniqueConstraint("member_id", "idempotency_key"),)

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"))
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.id"), unique=True)
    merchant_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("merchants.id"), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[DisputeStatus] = mapped_column(Enum(DisputeStatus, native_enum=False, length=16))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    resolution_note: Mapped[str | None] = mapped_column(String(500))
