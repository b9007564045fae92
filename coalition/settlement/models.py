"""Settlement tables. Every row is written once and never updated.

- ``network_policies``: the policy's versions; the version in force at an entry's
  ``created_at`` (the latest with ``effective_from <= created_at``) prices that entry.
- ``settlement_batches``: one closed batch per run, chained by ``seq`` /
  ``previous_batch_id`` (both unique, so two runs can never chain from the same batch) and
  covering the ledger entries with ``after_entry_id < id <= through_entry_id``.
- ``settlement_lines``: the batch's aggregated lines (issuer x redeemer, issuance,
  expiry per policy version) and its adjustments (one per late reversal).
- ``settlement_positions``: one row per merchant with activity in the batch: its figures,
  its net position and the canonical text of its own statement.
- ``settlement_windows``: the window aggregates a batch was priced from, which the what-if
  re-prices (:mod:`coalition.settlement.windows`).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class FundingModel(enum.StrEnum):
    ISSUANCE = "ISSUANCE"  # the issuer pays when it issues; every honored point is reimbursed
    REDEMPTION = "REDEMPTION"  # the issuer pays only when another merchant honors its points


class SettlementPeriod(enum.StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class LineKind(enum.StrEnum):
    HONORED = "HONORED"  # issuer's points honored by redeemer (net of same-batch reversals)
    ISSUED = "ISSUED"  # points the issuer issued (net of same-batch earn reversals)
    EXPIRED = "EXPIRED"  # the issuer's points that expired (breakage)
    ADJUSTMENT = "ADJUSTMENT"  # a reversal of a transaction settled in an earlier batch
    GIFT_CARD = "GIFT_CARD"  # money of issuer's gift cards spent at redeemer (points: minor units spent)


class ProgramCost(enum.StrEnum):
    """What a line's points paid for, when a program: the part of an ISSUED line a program added (its issuer
    funds it: a partner, or the network when the issuer is NULL), or the part of a HONORED line that was a
    reward's voucher (the points' issuers pay the reward's merchant for it, as for any points it honors)."""

    CAMPAIGN = "CAMPAIGN"  # a campaign's extra points, in the earning merchant's earn
    TIER = "TIER"  # a tier multiplier's extra points: the earning merchant's, or the network's bonus
    QUEST = "QUEST"  # a quest's bonus: the network's, or each funding partner's share
    VOUCHER = "VOUCHER"  # points honored for a reward claimed (a voucher), at the reward's merchant


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16)


class NetworkPolicy(Base):
    __tablename__ = "network_policies"
    __table_args__ = (
        CheckConstraint("point_value_minor >= 0", name="point_value_non_negative"),
        Index("ix_network_policies_effective_from", "effective_from"),
        Index("uq_network_policies_idempotency_key", "idempotency_key", unique=True),
    )

    id: Mapped[intpk]
    point_value_minor: Mapped[int]
    funding_model: Mapped[FundingModel] = mapped_column(_enum(FundingModel))
    reimbursement_rate: Mapped[str] = mapped_column(String(32))  # a Decimal, 0..1
    breakage_share: Mapped[str] = mapped_column(String(32))  # a Decimal, 0..1
    period: Mapped[SettlementPeriod] = mapped_column(_enum(SettlementPeriod))
    timezone: Mapped[str] = mapped_column(String(64))
    effective_from: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Points one merchant may redeem or hold from one member in 24 h without the member's proof of
    # presence. NULL (versions stored before migration 0008): COALITION_REDEEM_WITHOUT_PROOF_POINTS.
    redeem_without_proof_points: Mapped[int | None]
    # setNetworkPolicy's key (the network's one key space) and its request's fingerprint; NULL: set
    # without a key, or before migration 0018 (coalition/settlement/policy.py POLICY_KEYS).
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))


class SettlementBatch(Base):
    __tablename__ = "settlement_batches"

    id: Mapped[intpk]
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    previous_batch_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("settlement_batches.id"), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    period_start: Mapped[dt.datetime]
    period_end: Mapped[dt.datetime]
    after_entry_id: Mapped[int]
    through_entry_id: Mapped[int]
    funding_models: Mapped[str] = mapped_column(String(64))  # the models in force, comma-separated
    gross_minor: Mapped[int]
    net_minor: Mapped[int]
    bilateral_minor: Mapped[int]
    network_income_minor: Mapped[int]
    residue_minor: Mapped[str] = mapped_column(String(64))  # a Decimal: exact minus rounded, to the network
    statement: Mapped[str] = mapped_column(Text)  # the canonical batch statement (JSON)
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Last, as migration 0010 added it: the gift-card entries settled are those with ids up to
    # this (after the previous batch's); NULL on batches closed before gift cards.
    through_gift_entry_id: Mapped[int | None]


class SettlementLine(Base):
    """A batch's line, keyed by (batch, its place in the batch).

    No foreign keys: a dense batch has a line per matrix cell (10^5 and more), and checking
    the batch and policy of each row one by one cost three times the insert itself
    (docs/benchmarks-journal.md, "Settlement"). The run writes the lines in the transaction that writes
    their batch, with policy ids it read in that transaction; batches and policies are never
    deleted.
    """

    __tablename__ = "settlement_lines"

    batch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[LineKind] = mapped_column(_enum(LineKind))
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    issuer_merchant_id: Mapped[int | None] = mapped_column(BigInteger)  # NULL: the network
    redeemer_merchant_id: Mapped[int | None] = mapped_column(BigInteger)
    points: Mapped[int]
    issuer_minor: Mapped[int]  # signed effect on the issuer's position
    redeemer_minor: Mapped[int]  # signed effect on the redeemer's position
    exact_minor: Mapped[str] = mapped_column(String(64))  # the unrounded money of the line (Decimal)
    reversal_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    original_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    original_batch_id: Mapped[int | None] = mapped_column(BigInteger)
    # Last, as the migration that added it left it: 1, 2, ... in the batch's order.
    line_no: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # What program the line's points paid for (NULL: plain points); added by 0017, after line_no.
    program: Mapped[ProgramCost | None] = mapped_column(_enum(ProgramCost), nullable=True)


class SettlementPosition(Base):
    __tablename__ = "settlement_positions"

    batch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("settlement_batches.id"), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("merchants.id"), primary_key=True,
                                             index=True)
    points_issued: Mapped[int]
    points_honored: Mapped[int]
    points_reversed: Mapped[int]
    points_expired: Mapped[int]
    charges_minor: Mapped[int]
    reimbursements_minor: Mapped[int]
    breakage_minor: Mapped[int]
    adjustments_minor: Mapped[int]
    net_minor: Mapped[int]
    statement: Mapped[str] = mapped_column(Text)  # the merchant's canonical statement (JSON)
    statement_sha256: Mapped[str] = mapped_column(String(64))


class SettlementWindow(Base):
    """The aggregates batch ``batch_id`` was priced from, as JSON (:mod:`coalition.settlement.windows`)."""

    __tablename__ = "settlement_windows"

    batch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("settlement_batches.id"), primary_key=True)
    rows: Mapped[str] = mapped_column(Text)
