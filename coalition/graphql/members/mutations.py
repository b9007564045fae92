"""Enrolling members (merchant)."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.core.mutations import payload_of
from coalition.graphql.core.types import UserError
from coalition.graphql.members.types import Member
from coalition.members.service import enroll_member


class EnrollMemberInput(graphene.InputObjectType):  # type: ignore[misc]
    email = graphene.String(description="Contact e-mail (optional; stored encrypted).")
    phone = graphene.String(description="Contact phone, 7 to 15 digits (optional; stored encrypted).")
    referral_code = graphene.String(description="Code of the member who referred this one.")
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same result.")


class EnrollMemberPayload(graphene.ObjectType):  # type: ignore[misc]
    """The new member, with what the member needs to carry."""

    member = graphene.Field(Member, description="The member.")
    member_token = graphene.String(description="For the member's own self-service (Authorization: Bearer).")
    qr_code = graphene.String(description="Payload signed by the network key; a POS verifies it offline.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class EnrollMember(graphene.Mutation):  # type: ignore[misc]
    """Enroll a customer in the network (merchant). The loyalty ID works at every partner."""

    class Arguments:
        input = EnrollMemberInput(required=True)

    Output = EnrollMemberPayload

    @staticmethod
    async def mutate(root: Any, info: Any, input: Any) -> Any:
        merchant_id = info.context.require_merchant()

        async def call() -> dict[str, Any]:
            enrollment = await enroll_member(
                info.context.db, info.context.services.keys, merchant_id=merchant_id,
                idempotency_key=input.idempotency_key, email=input.email, phone=input.phone,
                referral_code=input.referral_code,
                referral_daily_limit=info.context.services.settings.referral_daily_limit,
            )
            return {"member": enrollment.member, "member_token": enrollment.member_token, "qr_code": enrollment.qr_code}

        return await payload_of(EnrollMemberPayload, call)


class MemberMutations(graphene.ObjectType):  # type: ignore[misc]
    enroll_member = EnrollMember.Field(required=True, description="Enroll a customer (merchant).")
