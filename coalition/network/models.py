"""Stored results of the network analysis.

- ``insight_runs``: one row per run of ``coalition analyze`` (or the worker's schedule),
  with when it started and finished, its parameters and a summary.
- ``insight_results``: what the API serves, one row per (run, scope), so a request reads
  one row. Scope ``network`` is the admin's network-wide view (top referrers, communities,
  fraud alerts, segment counts); ``merchant:<id>`` is one merchant's view, holding only
  that merchant's own members; ``map.png`` / ``map.svg`` hold the network map's bytes.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base, intpk, utcnow


class RunStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class InsightRun(Base):
    __tablename__ = "insight_runs"

    id: Mapped[intpk]
    status: Mapped[RunStatus] = mapped_column(Enum(RunStatus, native_enum=False, length=16))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class InsightResult(Base):
    __tablename__ = "insight_results"
    __table_args__ = (Index("ix_insight_results_scope_run", "scope", "run_id", unique=True),)

    id: Mapped[intpk]
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("insight_runs.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)


class ReviewDecision(enum.StrEnum):
    CONFIRMED = "CONFIRMED"
    DISMISSED = "DISMISSED"


class ReviewSubject(enum.StrEnum):
    MEMBER = "MEMBER"
    MERCHANT = "MERCHANT"


class FraudReview(Base):
    """A reviewer's decision on a flagged member or merchant; the newest per subject counts.

    The analysis (``coalition.network.reviews.load_reviews``) leaves DISMISSED subjects out of
    its alerts and treats CONFIRMED ones as known fraud. Rows are never updated: a change of
    mind is a new row, so the history stays.
    """

    __tablename__ = "fraud_reviews"
    __table_args__ = (Index("ix_fraud_reviews_subject", "subject_kind", "subject_id", "id"),)

    id: Mapped[intpk]
    subject_kind: Mapped[ReviewSubject] = mapped_column(Enum(ReviewSubject, native_enum=False, length=16))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    decision: Mapped[ReviewDecision] = mapped_column(Enum(ReviewDecision, native_enum=False, length=16))
    reviewer: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(String(500))
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
