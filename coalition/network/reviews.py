"""Reviewers' decisions on fraud alerts: recorded, and handed to the analysis.

An admin confirms or dismisses a flagged member or merchant (GraphQL ``reviewFraudAlert``).
Each decision is a row of ``fraud_reviews``; the newest per subject counts. The next analysis
run (``coalition.network.jobs``) reads them with ``load_reviews``: dismissed subjects leave the
alerts (a reviewer who cleared a household is not asked again), confirmed members are known
fraud (score 1, kept out of every honest baseline, their influence discounted).

Error codes: ``MEMBER_NOT_FOUND`` / ``MERCHANT_NOT_FOUND`` (no such subject), ``INVALID_INPUT``
(a reason longer than 500 characters, or with a control character, a lone surrogate or a bidi
override, as every free-text input: :func:`coalition.errors.check_text`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select

from coalition.db import Database, utcnow
from coalition.errors import DomainError, check_text
from coalition.members.models import Member
from coalition.network.fraud import Reviews
from coalition.network.models import FraudReview, ReviewDecision, ReviewSubject
from coalition.partners.models import Merchant

MAX_REASON = 500


class MemberNotFound(DomainError):
    code = "MEMBER_NOT_FOUND"


class MerchantNotFound(DomainError):
    code = "MERCHANT_NOT_FOUND"


@dataclass(frozen=True)
class RecordedReview:
    id: int
    subject_kind: ReviewSubject
    subject_id: int
    decision: ReviewDecision
    reviewer: str
    reason: str | None
    decided_at: object


async def record_review(db: Database, *, subject_kind: ReviewSubject, subject_id: int, decision: ReviewDecision,
                        reviewer: str, reason: str | None) -> RecordedReview:
    """Store one decision (a new row; the newest per subject counts)."""
    # Free text an admin typed: bounded, and no control character (PostgreSQL cannot store NUL in text).
    reason = check_text(reason, "reason", MAX_REASON, code="INVALID_INPUT")  # the code the API documents
    table = Member if subject_kind is ReviewSubject.MEMBER else Merchant
    decided_at = utcnow()
    async with db.transaction() as conn:
        exists = (await conn.execute(select(table.id).where(table.id == subject_id))).first()
        if exists is None:
            error = MemberNotFound if subject_kind is ReviewSubject.MEMBER else MerchantNotFound
            raise error(f"no {subject_kind.value.lower()} has that id", field="subjectId")
        review_id = (await conn.execute(insert(FraudReview).values(
            subject_kind=subject_kind, subject_id=subject_id, decision=decision, reviewer=reviewer[:120],
            reason=reason, decided_at=decided_at,
        ).returning(FraudReview.id))).scalar_one()
    return RecordedReview(int(review_id), subject_kind, subject_id, decision, reviewer[:120], reason, decided_at)


async def load_reviews(db: Database) -> Reviews:
    """The newest decision per subject, as the analysis takes them."""
    newest = (select(func.max(FraudReview.id)).group_by(FraudReview.subject_kind, FraudReview.subject_id)
              .scalar_subquery())
    async with db.read() as conn:
        rows = (await conn.execute(
            select(FraudReview.subject_kind, FraudReview.subject_id, FraudReview.decision)
            .where(FraudReview.id.in_(newest))
        )).all()
    confirmed = {r.subject_id for r in rows if r.subject_kind == ReviewSubject.MEMBER
                 and r.decision == ReviewDecision.CONFIRMED}
    dismissed = {r.subject_id for r in rows if r.subject_kind == ReviewSubject.MEMBER
                 and r.decision == ReviewDecision.DISMISSED}
    dismissed_merchants = {r.subject_id for r in rows if r.subject_kind == ReviewSubject.MERCHANT
                           and r.decision == ReviewDecision.DISMISSED}
    return Reviews(frozenset(confirmed), frozenset(dismissed), frozenset(dismissed_merchants))


def alert_key(kind: str, member_ids: Sequence[int]) -> str:
    """How a page names one alert in a form: its kind and its members, sorted (stable across runs)."""
    members = ",".join(str(m) for m in sorted(member_ids))
    key = f"{kind}:{members}"
    return key if len(key) <= 200 else f"{kind}:sha256:{hashlib.sha256(members.encode()).hexdigest()}"


async def review_alert(db: Database, *, member_ids: Sequence[int], merchant_ids: Sequence[int],
                       decision: ReviewDecision, reviewer: str, reason: str | None = None) -> int:
    """One decision on a whole alert (the admin console): a review of each member it names, or of each
    merchant when it names no member. Returns the reviews written."""
    subjects = ([(ReviewSubject.MEMBER, m) for m in sorted(set(member_ids))]
                or [(ReviewSubject.MERCHANT, m) for m in sorted(set(merchant_ids))])
    for kind, subject_id in subjects:
        await record_review(db, subject_kind=kind, subject_id=subject_id, decision=decision, reviewer=reviewer,
                            reason=reason)
    return len(subjects)


def alert_decision(reviews: Reviews, member_ids: Sequence[int], merchant_ids: Sequence[int]) -> ReviewDecision | None:
    """The decision every subject of an alert shares, or None (undecided, or decided differently)."""
    if member_ids:
        if all(m in reviews.confirmed_members for m in member_ids):
            return ReviewDecision.CONFIRMED
        return ReviewDecision.DISMISSED if all(m in reviews.dismissed_members for m in member_ids) else None
    if merchant_ids and all(m in reviews.dismissed_merchants for m in merchant_ids):
        return ReviewDecision.DISMISSED
    return None
