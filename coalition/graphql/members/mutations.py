"""Enrolling members (merchant); member access and disputes are in ``credentials`` and ``disputes``."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import UserError
from coalition.graphql.members.credentials import (
    ClaimMemberAccess,
    IssueMemberClaimCode,
    RevokeMemberTokens,
    RotateMemberToken,
    claim_fields,
)
from coalition.graphql.members.disputes import DisputeTransaction, ResolveDispute
from coalition.graphql.members.types import Member
from coalition.members.service import enroll_member


class EnrollMemberInput(graphene.InputObjectType):  # type: ignore[misc]
    email = graphene.String(description="Contact e-mail (optional; stored encrypted).")
    phone = graphene.String(description="Contact phone, 7 to 15 digits (optional; stored encrypted).")
    referral_code = graphene.String(description="Code of the member who referred this one.")
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same result.")


class EnrollMemberPayload(graphene.ObjectType):  # type: ignore[misc]
    """The new member, with what the customer needs to carry: the loyalty ID or QR code, and a claim code."""

    member = graphene.Field(Member, description="The member.")
    member_token = graphene.String(
        description="Deprecated: always null. The merchant never gets the member's token; hand the customer "
                    "`claimCode` (or `claimUrl`), which only the customer exchanges for a token with "
                    "`claimMemberAccess`.",
        deprecation_reason="Always null: the customer claims a token with claimCode (claimMemberAccess).",
    )
    claim_code = graphene.String(
        description="One-time code for the customer (print it, show it, or send claimUrl), valid until "
                    "claimExpiresAt; exchanged once for the member's token. On a replay: a fresh code (the "
                    "previous one stops working) while the member has not claimed access, else null.")
    claim_url = graphene.String(description="The claim code as a link to the network's wallet (COALITION_PUBLIC_URL).")
    claim_expires_at = graphene.DateTime(description="When claimCode stops working.")
    qr_code = graphene.String(description="Payload signed by the network key; a POS verifies it offline.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class EnrollMember(BaseMutation, access=Access.MERCHANT, input_type=EnrollMemberInput, output=EnrollMemberPayload):
    """Enroll a customer in the network (merchant). The loyalty ID works at every partner."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        settings = info.context.services.settings
        enrollment = await enroll_member(
            info.context.db, info.context.services.keys, merchant_id=info.context.merchant_id,
            idempotency_key=input.idempotency_key, email=input.email, phone=input.phone,
            referral_code=input.referral_code,
            referral_daily_limit=settings.referral_daily_limit, claim_ttl_s=settings.member_claim_ttl_s,
        )
        return {"member": enrollment.member, "member_token": None, "qr_code": enrollment.qr_code,
                **claim_fields(settings, enrollment.claim)}


class MemberMutations(graphene.ObjectType):  # type: ignore[misc]
    enroll_member = EnrollMember.Field(required=True, description="Enroll a customer (merchant).")
    claim_member_access = ClaimMemberAccess.Field(
        required=True, description="Exchange a one-time claim code for the member's token (the customer; no key).")
    rotate_member_token = RotateMemberToken.Field(
        required=True, description="A new member token; the member's other tokens stop working (member).")
    revoke_member_tokens = RevokeMemberTokens.Field(
        required=True, description="Sign a member out everywhere (the member itself, or an admin).")
    issue_member_claim_code = IssueMemberClaimCode.Field(
        required=True, description="Revoke a member's credentials and issue a new claim code (admin).")
    dispute_transaction = DisputeTransaction.Field(
        required=True, description="Dispute one of the member's own redemptions (member).")
    resolve_dispute = ResolveDispute.Field(required=True, description="Resolve or dismiss an open dispute (admin).")
