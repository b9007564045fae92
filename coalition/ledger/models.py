"""Ledger tables. Append-only except the few columns named below.

- ``entries``: one row per ledger transaction (the API's ``Transaction``).
- ``postings``: its double-entry legs; they sum to zero per entry. Merchant and network
  accounts exist only as sums of postings, so no row is updated by every earn.
- ``lots``: what each earn left the member, with issuer and expiry. ``remaining`` is the
  one mutable column (and ``reversed``), changed only under the member's row lock.
- ``allocations``: every movement of points out of (or back into) a lot, attributed to
  the issuer and the acting merchant. Settlement stands on these rows.
- ``holds``: two-phase redemptions; ``status`` moves once from AUTHORIZED.
- ``ledger_refusals``: a refused write's outcome under its idempotency key, so a retry with
  the key gets the same refusal for the retention period (``ledger/refusals.py``).
- ``presence_proofs``: each member proof of presence a redemption used, once (``ledger/presence.py``).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class EntryKind(enum.StrEnum):
    EARN = "EARN"
    REDEEM = "REDEEM"
    REVERSAL = "REVERSAL"
    EXPIRY = "EXPIRY"
    ADJUSTMENT = "ADJUSTMENT"
    HOLD = "HOLD"
    CAPTURE = "CAPTURE"
    VOID = "VOID"
    BONUS = "BONUS"  # bonus points: the network's (referrals; merchant_id NULL) or a funding partner's (quests)


class Account(enum.StrEnum):
    """Posting accounts. ``account_id`` is the member or merchant id (NULL: the network)."""

    ISSUED = "ISSUED"  # merchant (or network) that issued points: goes negative
    MEMBER = "MEMBER"  # member's spendable points
    HELD = "HELD"  # member's points reserved by holds
    DEBT = "DEBT"  # member's debt after a reversal shortfall: negative while owed
    HONORED = "HONORED"  # merchant that honored (redeemed) points
    EXPIRED = "EXPIRED"  # network breakage, account_id = issuer merchant


class AllocationKind(enum.StrEnum):
    REDEEM = "REDEEM"  # lot -> honored by merchant_id
    HOLD = "HOLD"  # lot -> reserved under hold_id
    CAPTURE = "CAPTURE"  # reserved -> honored by merchant_id (lot unchanged)
    RELEASE = "RELEASE"  # reserved -> back to lot
    EXPIRY = "EXPIRY"  # lot -> expired
    REVERSAL = "REVERSAL"  # lot -> removed by reversing its earn
    RESTORE = "RESTORE"  # honored -> back to lot, by reversing a redemption


class HoldStatus(enum.StrEnum):
    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16)


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        # NULLs are distinct in the constraint above, so the network's own writes (merchant_id
        # NULL: bonuses) get their once-only guarantee from this partial unique index.
        Index("uq_entries_network_idempotency_key", "idempotency_key", unique=True,
              postgresql_where=text("merchant_id IS NULL"), sqlite_where=text("merchant_id IS NULL")),
        Index("ix_entries_member_id_id", "member_id", "id"),
        Index("ix_entries_merchant_id_id", "merchant_id", "id"),
        # The merchant console's figures and customer list: one index-only scan per merchant.
        Index("ix_entries_merchant_member", "merchant_id", "member_id",
              postgresql_include=["kind", "points", "created_at"]),
        # An entry is reversed at most once. Partial: almost no entry is a reversal, and an
        # index entry for each NULL would cost every earn and redeem a write for nothing.
        Index("uq_entries_reverses_id", "reverses_id", unique=True,
              postgresql_where=text("reverses_id IS NOT NULL"), sqlite_where=text("reverses_id IS NOT NULL")),
        # A merchant's redemptions from one member in the last 24 h, summed under the member's row
        # lock by every redemption without proof of presence (ledger/presence.py). Partial: earns
        # (most entries) pay nothing for it.
        Index("ix_entries_redeem_window", "member_id", "merchant_id", "created_at",
              postgresql_where=text("kind = 'REDEEM'"), sqlite_where=text("kind = 'REDEEM'")),
        # A settlement window's program bonuses (settlement/compute.py _program_costs): without it, every
        # run scanned the window's entries for its few BONUS ones (0.4 s of a 4.4 s run at 10M). Partial:
        # an earn or a redemption adds nothing to it.
        Index("ix_entries_bonus", "id", postgresql_where=text("kind = 'BONUS'"), sqlite_where=text("kind = 'BONUS'")),
    )

    id: Mapped[intpk]
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind))
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"))
    merchant_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    points: Mapped[int]  # signed, the member's spendable side: + earn, - redeem
    amount_minor: Mapped[int | None]  # purchase amount for EARN
    reference: Mapped[str | None] = mapped_column(String(128))
    reverses_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("entries.id"))
    hold_id: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # When the movement happened, where that differs from when it was recorded: an imported
    # history keeps its original dates here (coalition/portability). NULL means created_at; read
    # it as COALESCE(effective_at, created_at). Last: migration 0014 appended it.
    effective_at: Mapped[dt.datetime | None]


class Posting(Base):
    __tablename__ = "postings"
    __table_args__ = (Index("ix_postings_account", "account", "account_id"),)

    id: Mapped[intpk]
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.id"), index=True)
    account: Mapped[Account] = mapped_column(_enum(Account))
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    points: Mapped[int]


class Lot(Base):
    __tablename__ = "lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0", name="remaining_non_negative"),
        CheckConstraint("remaining <= points", name="remaining_within_points"),
        Index(
            "ix_lots_open",
            "member_id",
            "expires_at",
            "id",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
        # A merchant's outstanding points (the console's dashboard), read from the index alone.
        Index("ix_lots_issuer_expiry", "issuer_merchant_id", "expires_at", postgresql_include=["remaining"]),
    )

    id: Mapped[intpk]
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"))
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.id"), unique=True)
    issuer_merchant_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    points: Mapped[int]
    remaining: Mapped[int]
    expires_at: Mapped[dt.datetime]
    reversed: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Allocation(Base):
    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        # Every movement but an expiry names its merchant: settlement tells expiries from
        # honored points by this alone, without grouping 10^7 rows by kind.
        CheckConstraint("(kind = 'EXPIRY') = (merchant_id IS NULL)", name="merchant_unless_expiry"),
        # Settlement finds a window's reversed redemptions without scanning every allocation.
        Index("ix_allocations_restores", "entry_id", postgresql_where=text("kind = 'RESTORE'"),
              sqlite_where=text("kind = 'RESTORE'")),
        # Only holds' allocations carry hold_id; a redemption's would add a NULL index entry.
        Index("ix_allocations_hold_id", "hold_id", postgresql_where=text("hold_id IS NOT NULL"),
              sqlite_where=text("hold_id IS NOT NULL")),
    )

    id: Mapped[intpk]
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.id"), index=True)
    lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lots.id"), index=True)
    hold_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("holds.id"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    issuer_merchant_id: Mapped[int | None] = mapped_column(BigInteger)
    merchant_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[AllocationKind] = mapped_column(_enum(AllocationKind))
    points: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Hold(Base):
    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_holds_open", "expires_at", postgresql_where=text("status = 'AUTHORIZED'"),
              sqlite_where=text("status = 'AUTHORIZED'")),
    )

    # The hold's id is its HOLD entry's id: one less column, and no insert-then-update cycle.
    id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.id"), primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    points: Mapped[int]
    captured_points: Mapped[int | None]
    status: Mapped[HoldStatus] = mapped_column(_enum(HoldStatus), default=HoldStatus.AUTHORIZED)
    expires_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Refusal(Base):
    """A refused write, kept under its idempotency key for ``COALITION_IDEMPOTENCY_RETENTION_S``.

    Written after the refused transaction rolled back (``ledger/refusals.py``). ``member_id`` is
    set when the member is known: wrong proofs of presence are counted per member and merchant.
    """

    __tablename__ = "ledger_refusals"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        Index("ix_ledger_refusals_created_at", "created_at"),
        Index("ix_ledger_refusals_wrong_proofs", "member_id", "merchant_id", "created_at",
              postgresql_where=text("code = 'INVALID_MEMBER_PROOF'"),
              sqlite_where=text("code = 'INVALID_MEMBER_PROOF'")),
    )

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(500))
    field: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PresenceProof(Base):
    """A member's proof of presence, used by the redemption or hold ``entry_id``: once only.

    The primary key is the proof itself (the member and the code's time step), so a second
    redemption with the same code conflicts, however the two race.
    """

    __tablename__ = "presence_proofs"

    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"), primary_key=True,
                                           autoincrement=False)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.id"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
