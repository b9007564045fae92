"""Admins' decisions on fraud alerts: ``reviewFraudAlert``."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.errors import DomainError
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import UserError, ids_of
from coalition.network.models import ReviewDecision, ReviewSubject
from coalition.network.reviews import record_review

FraudReviewDecision = graphene.Enum.from_enum(ReviewDecision, description="CONFIRMED (fraud) or DISMISSED (honest).")


class FraudReview(graphene.ObjectType):  # type: ignore[misc]
    """A reviewer's decision on a flagged member or merchant (the newest per subject counts)."""

    subject_kind = graphene.String(required=True, description="MEMBER or MERCHANT.")
    subject_id = graphene.ID(required=True, description="The member's or merchant's global ID.")
    decision = graphene.Field(FraudReviewDecision, required=True, description="CONFIRMED or DISMISSED.")
    reviewer = graphene.String(required=True, description="Who decided (the admin key).")
    reason = graphene.String(description="Why, as the reviewer wrote it.")
    decided_at = graphene.DateTime(required=True, description="When.")


class ReviewFraudAlertInput(graphene.InputObjectType):  # type: ignore[misc]
    subject_id = graphene.ID(required=True, description="A flagged member's or merchant's global ID.")
    decision = graphene.Field(FraudReviewDecision, required=True, description="CONFIRMED or DISMISSED.")
    reason = graphene.String(description="Why (at most 500 characters).")


class ReviewFraudAlertPayload(graphene.ObjectType):  # type: ignore[misc]
    """The decision as stored."""

    review = graphene.Field(FraudReview, description="The decision.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class ReviewFraudAlert(BaseMutation, access=Access.ADMIN, input_type=ReviewFraudAlertInput,
                       output=ReviewFraudAlertPayload):
    """Confirm or dismiss a flagged member or merchant (admin). The next analysis run leaves
    dismissed subjects out of its alerts and treats confirmed members as known fraud."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        decoded = ids_of(info).decode_any(input.subject_id, ("Member", "Merchant"))
        if decoded is None:
            raise DomainError("subjectId is not a member's or merchant's ID", code="INVALID_ID", field="subjectId")
        type_name, subject_id = decoded
        caller = info.context.require_admin()
        review = await record_review(
            info.context.db, subject_kind=ReviewSubject(type_name.upper()), subject_id=subject_id,
            decision=ReviewDecision(input.decision), reviewer=f"admin-key:{caller.key_id}", reason=input.reason,
        )
        return {"review": FraudReview(
            subject_kind=review.subject_kind.value, subject_id=input.subject_id, decision=review.decision,
            reviewer=review.reviewer, reason=review.reason, decided_at=review.decided_at,
        )}


class InsightMutations(graphene.ObjectType):  # type: ignore[misc]
    review_fraud_alert = ReviewFraudAlert.Field()
