"""Member access: claim a token with a one-time code, rotate it, revoke it; admins re-issue codes."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.auth.models import Role
from coalition.config import Settings
from coalition.errors import InvalidInput
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import UserError
from coalition.graphql.dataloaders import MemberByIdLoader
from coalition.graphql.errors import Forbidden
from coalition.graphql.members.types import Member
from coalition.loyalty_id import same_loyalty_id
from coalition.members.credentials import (
    ClaimCode,
    claim_member_access,
    claim_url,
    reissue_claim_code,
    revoke_member_credentials,
    rotate_member_token,
)
from coalition.members.service import find_member


def claim_fields(settings: Settings, claim: ClaimCode | None) -> dict[str, Any]:
    if claim is None:
        return {"claim_code": None, "claim_url": None, "claim_expires_at": None}
    return {"claim_code": claim.code, "claim_url": claim_url(settings.public_url, claim.code),
            "claim_expires_at": claim.expires_at}


class ClaimMemberAccessInput(graphene.InputObjectType):  # type: ignore[misc]
    claim_code = graphene.String(required=True,
                                 description="The code the shop handed over (case and dashes do not matter).")


class MemberTokenPayload(graphene.ObjectType):  # type: ignore[misc]
    """A new member token: shown this once, stored only as a hash."""

    member = graphene.Field(Member, description="The member the token belongs to.")
    member_token = graphene.String(description="Send as Authorization: Bearer <token>; keep it secret.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class ClaimMemberAccess(BaseMutation, access=Access.ANONYMOUS_OR_MEMBER, input_type=ClaimMemberAccessInput,
                        output=MemberTokenPayload,
                        refusal="a claim code is the customer's to use: send it without an API key"):
    """Exchange a one-time claim code for the member's token (the customer, without a key).

    Any failure (mistyped, unknown, expired, used or revoked code) is CLAIM_CODE_INVALID, the
    same for every reason. A shop's or an admin's key is refused: the code is the customer's.
    """

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        claimed = await claim_member_access(info.context.db, input.claim_code)
        return {"member": claimed.member, "member_token": claimed.member_token}


class RotateMemberTokenInput(graphene.InputObjectType):  # type: ignore[misc]
    label = graphene.String(description="A name for the device the new token goes to (at most 64 characters).")


class RotateMemberToken(BaseMutation, access=Access.MEMBER, input_type=RotateMemberTokenInput,
                        output=MemberTokenPayload):
    """A new token for the calling member; every other token of the member stops working."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        member_id = info.context.member_id
        token = await rotate_member_token(info.context.db, member_id, label=input.label)
        member = await find_member_by_id(info, member_id)
        return {"member": member, "member_token": token}


async def find_member_by_id(info: ResolveInfo, member_id: int) -> Any:
    return await info.context.loader(MemberByIdLoader).load(member_id)


class RevokeMemberTokensInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(description="Admin: the member to sign out. A member leaves it out (itself).")


class RevokeMemberTokensPayload(graphene.ObjectType):  # type: ignore[misc]
    """How many credentials stopped working."""

    revoked_count = graphene.Int(description="Tokens and unused claim codes revoked.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class RevokeMemberTokens(BaseMutation, access=Access.MEMBER_OR_ADMIN, input_type=RevokeMemberTokensInput,
                         output=RevokeMemberTokensPayload,
                         refusal="only the member itself or an admin can revoke a member's tokens"):
    """Sign a member out everywhere: every token and unused claim code stops working.

    Within COALITION_AUTH_CACHE_S seconds on every API process. A member calls it for itself
    (then needs a claim code from an admin to get back in); an admin names the member.
    """

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        if info.context.require_caller().role == Role.ADMIN:
            if not input.loyalty_id:
                raise InvalidInput("an admin names the member: loyaltyId", code="INVALID_LOYALTY_ID",
                                   field="loyaltyId")
            member_id = (await find_member(info.context.db, input.loyalty_id)).id
        else:
            member_id = info.context.member_id
            if input.loyalty_id:
                own = await find_member_by_id(info, member_id)
                if own is None or not same_loyalty_id(input.loyalty_id, own.loyalty_id):
                    raise Forbidden("a member can revoke only its own tokens: leave loyaltyId out")
        return {"revoked_count": await revoke_member_credentials(info.context.db, member_id)}


class IssueMemberClaimCodeInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(required=True, description="The member who lost access.")


class IssueMemberClaimCodePayload(graphene.ObjectType):  # type: ignore[misc]
    """A new claim code for a member; its earlier tokens and codes no longer work."""

    member = graphene.Field(Member, description="The member.")
    claim_code = graphene.String(description="Hand it to the customer once their identity is verified.")
    claim_url = graphene.String(description="The claim code as a link to the network's wallet.")
    claim_expires_at = graphene.DateTime(description="When claimCode stops working.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class IssueMemberClaimCode(BaseMutation, access=Access.ADMIN, input_type=IssueMemberClaimCodeInput,
                           output=IssueMemberClaimCodePayload):
    """For a member who lost access (admin, after the member's identity was verified): revoke every
    credential the member holds and issue a new one-time claim code."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        settings = info.context.services.settings
        member = await find_member(info.context.db, input.loyalty_id)
        member, claim = await reissue_claim_code(info.context.db, member.id, ttl_s=settings.member_claim_ttl_s)
        return {"member": member, **claim_fields(settings, claim)}
