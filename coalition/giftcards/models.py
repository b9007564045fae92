"""The ledger's second asset: money on gift cards, in the network currency's minor units.

Beside the points tables (``ledger/models.py``) and checked by the same invariants
(``ledger/invariants.py``); written only by ``coalition/giftcards/``.

- ``gift_cards``: one row per card. The code itself is never stored: ``code_hash`` is a
  keyed hash (``NetworkKeys.gift_card_mac``), ``last4`` its last four characters.
  ``balance_minor`` (spendable) and ``held_minor`` (reserved by open holds) are the two
  mutable columns, changed only by conditional UPDATEs; CHECKs keep them >= 0.
- ``gift_card_entries``: one row per gift-card transaction, append-only, unique per
  merchant and idempotency key. ``amount_minor`` is the signed change of the card's
  spendable balance (+issue, -spend, -hold, +released). Settlement windows tile their ids.
- ``gift_card_postings``: the entries' double-entry legs, with their ``asset`` (MONEY) and
  currency; they sum to zero per entry and asset.
- ``gift_card_holds``: two-phase spends; ``status`` moves once from AUTHORIZED.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow

MONEY = "MONEY"  # the asset of every gift-card posting (points postings are the asset POINTS)


class GiftEntryKind(enum.StrEnum):
    ISSUE = "ISSUE"  # sold at the issuer's till: the card gets its value
    REDEEM = "REDEEM"  # spent at a partner
    HOLD = "HOLD"  # reserved by a partner's authorization
    CAPTURE = "CAPTURE"  # the authorization spent (all or part; the rest released)
    VOID = "VOID"  # the authorization released (or expired)
    REFUND = "REFUND"  # a spend given back to the card by the merchant that took it
    EXPIRY = "EXPIRY"  # the card expired: its balance is the issuer's breakage


class GiftAccount(enum.StrEnum):
    """Posting accounts of the MONEY asset. ``account_id``: the card or the merchant."""

    CASH = "CASH"  # issuer merchant: what it took for its cards (goes negative: it owes it)
    CARD = "CARD"  # card: spendable balance
    CARD_HELD = "CARD_HELD"  # card: reserved by open holds
    SPENT = "SPENT"  # merchant that accepted the card (net of refunds)
    BREAKAGE = "BREAKAGE"  # issuer merchant: expired balances it keeps


class GiftHoldStatus(enum.StrEnum):
    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16)


class GiftCard(Base):
    __tablename__ = "gift_cards"
    __table_args__ = (
        CheckConstraint("balance_minor >= 0", name="balance_non_negative"),
        CheckConstraint("held_minor >= 0", name="held_non_negative"),
        Index("ix_gift_cards_issuer", "issuer_merchant_id", "id"),
        Index("ix_gift_cards_member", "member_id", postgresql_where=text("member_id IS NOT NULL"),
              sqlite_where=text("member_id IS NOT NULL")),
    )

    id: Mapped[intpk]
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    currency: Mapped[str] = mapped_column(String(3))
    issuer_merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    initial_minor: Mapped[int]
    balance_minor: Mapped[int]
    held_minor: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[dt.datetime | None]
    expired_at: Mapped[dt.datetime | None]  # set once, by the expiry that took the balance
    member_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("members.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GiftEntry(Base):
    __tablename__ = "gift_card_entries"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        Index("ix_gift_card_entries_card_id", "card_id", "id"),
        # A spend is refunded at most once.
        Index("uq_gift_card_entries_reverses_id", "reverses_id", unique=True,
              postgresql_where=text("reverses_id IS NOT NULL"), sqlite_where=text("reverses_id IS NOT NULL")),
    )

    id: Mapped[intpk]
    kind: Mapped[GiftEntryKind] = mapped_column(_enum(GiftEntryKind))
    card_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("gift_cards.id"))
    issuer_merchant_id: Mapped[int] = mapped_column(BigInteger)  # the card's, for settlement
    merchant_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("merchants.id"))  # NULL: expiry
    amount_minor: Mapped[int]  # signed change of the card's spendable balance
    spent_minor: Mapped[int] = mapped_column(default=0)  # signed change of SPENT at merchant_id (settled)
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str | None] = mapped_column(String(128))
    reverses_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("gift_card_entries.id"))
    hold_id: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GiftPosting(Base):
    __tablename__ = "gift_card_postings"
    __table_args__ = (Index("ix_gift_card_postings_account", "account", "account_id"),)

    id: Mapped[intpk]
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("gift_card_entries.id"), index=True)
    asset: Mapped[str] = mapped_column(String(8), default=MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    account: Mapped[GiftAccount] = mapped_column(_enum(GiftAccount))
    account_id: Mapped[int]
    amount_minor: Mapped[int]


class GiftHold(Base):
    __tablename__ = "gift_card_holds"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index("ix_gift_card_holds_open", "expires_at", postgresql_where=text("status = 'AUTHORIZED'"),
              sqlite_where=text("status = 'AUTHORIZED'")),
    )

    # The hold's id is its HOLD entry's id, as for points holds.
    id: Mapped[int] = mapped_column(BigInteger, ForeignKey("gift_card_entries.id"), primary_key=True,
                                    autoincrement=False)
    card_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("gift_cards.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"))
    amount_minor: Mapped[int]
    captured_minor: Mapped[int | None]
    status: Mapped[GiftHoldStatus] = mapped_column(_enum(GiftHoldStatus), default=GiftHoldStatus.AUTHORIZED)
    expires_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
