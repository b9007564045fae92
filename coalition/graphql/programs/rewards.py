"""Rewards and vouchers: types, ``Query.rewards``, createReward / claimReward / useVoucher."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.auth.models import Role
from coalition.db import utcnow
from coalition.graphql.access import may_see_offers, may_see_voucher
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import (
    Node,
    UserError,
    connection,
    connection_types,
    decode_cursor,
    decode_id,
    decode_input_id,
    page_size,
)
from coalition.graphql.dataloaders import MerchantByIdLoader
from coalition.graphql.ledger.mutations import idempotency_key_field, member_proof_field
from coalition.graphql.programs.loaders import RewardByIdLoader, VoucherByIdLoader
from coalition.programs import rewards, vouchers
from coalition.programs.reward_models import Reward as RewardModel
from coalition.programs.reward_models import Voucher as VoucherModel
from coalition.programs.reward_models import VoucherStatus as VoucherStatusValue

VoucherStatus = graphene.Enum.from_enum(VoucherStatusValue, description="Where a voucher stands.")


class Reward(graphene.ObjectType):  # type: ignore[misc]
    """Something a merchant gives for points ("100 points = a free coffee"): a public offer."""

    class Meta:
        interfaces = (Node,)
        possible_types = (RewardModel,)

    merchant = graphene.Field("coalition.graphql.partners.types.Merchant", required=True,
                              description="The merchant that gives it and honors its points.")
    name = graphene.String(required=True, description="What the member gets.")
    description = graphene.String(description="More about it (at most 500 characters).")
    points_cost = graphene.Int(required=True, description="Points a claim takes.")
    active = graphene.Boolean(required=True, description="Whether it can be claimed now (valid and in stock).")
    stock_left = graphene.Int(description="Vouchers it may still give; null: unlimited.")
    valid_from = graphene.DateTime(description="Claimable from (null: since it was published).")
    valid_until = graphene.DateTime(description="Claimable until (null: no end).")
    voucher_valid_days = graphene.Int(required=True, description="How long a voucher of it stays valid.")

    @staticmethod
    async def fetch(info: ResolveInfo, reward_id: int) -> Any:
        if not may_see_offers(info):
            return None
        return await info.context.loader(RewardByIdLoader).load(reward_id)

    @staticmethod
    async def resolve_merchant(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MerchantByIdLoader).load(root.merchant_id)

    @staticmethod
    def resolve_active(root: Any, info: ResolveInfo) -> bool:
        return rewards.is_active(root, utcnow())


RewardEdge, RewardConnection = connection_types(Reward, name="Reward", noun="reward", nouns="rewards",
                                                order="newest first")


class Voucher(graphene.ObjectType):  # type: ignore[misc]
    """A claimed reward (or a full stamp card's): the member shows its code, the reward's merchant uses it."""

    class Meta:
        interfaces = (Node,)
        possible_types = (VoucherModel,)

    code = graphene.String(required=True, description="What the member shows at the till, e.g. 7KQ2M-4XW9P.")
    reward = graphene.Field(Reward, required=True, description="The reward it is for.")
    member = graphene.Field("coalition.graphql.members.types.Member", required=True, description="Whose it is.")
    status = graphene.Field(VoucherStatus, required=True, description="ISSUED, USED, EXPIRED or CANCELLED.")
    points = graphene.Int(required=True, description="Points the claim took (0: a stamp card's voucher).")
    expires_at = graphene.DateTime(description="When an unused voucher expires (and gives its points back).")
    created_at = graphene.DateTime(required=True, description="When it was issued.")
    closed_at = graphene.DateTime(description="When it was used, expired or cancelled.")

    @staticmethod
    async def fetch(info: ResolveInfo, voucher_id: int) -> Any:
        row = await info.context.loader(VoucherByIdLoader).load(voucher_id)
        return row if row is not None and may_see_voucher(info, row.merchant_id, row.member_id) else None

    @staticmethod
    def resolve_code(root: Any, info: ResolveInfo) -> str:
        return vouchers.display_code(root.code)

    @staticmethod
    async def resolve_reward(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(RewardByIdLoader).load(root.reward_id)

    @staticmethod
    async def resolve_member(root: Any, info: ResolveInfo) -> Any:
        from coalition.graphql.members.types import Member

        return await Member.fetch(info, root.member_id)


VoucherEdge, VoucherConnection = connection_types(Voucher, name="Voucher", noun="voucher", nouns="vouchers",
                                                  order="newest first")


class CreateRewardInput(graphene.InputObjectType):  # type: ignore[misc]
    name = graphene.String(required=True, description="What the member gets (1 to 100 characters).")
    points_cost = graphene.Int(required=True, description="Points a claim takes, > 0.")
    description = graphene.String(description="More about it (at most 500 characters).")
    stock = graphene.Int(description="How many vouchers it may give (1 to 1,000,000); omitted: unlimited.")
    valid_from = graphene.DateTime(description="Claimable from (default: now).")
    valid_until = graphene.DateTime(description="Claimable until (default: no end); in the future.")
    voucher_valid_days = graphene.Int(description="Days a voucher stays valid (1 to 3650, default 30).")
    idempotency_key = idempotency_key_field()


class RewardPayload(graphene.ObjectType):  # type: ignore[misc]
    """The reward published."""

    reward = graphene.Field(Reward, description="The reward, null when userErrors says why not.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class ClaimRewardInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(required=True, description="The member's loyalty ID (a member: its own).")
    reward_id = graphene.ID(required=True, description="The reward (at the till: one of the calling merchant's).")
    member_proof = member_proof_field()
    idempotency_key = idempotency_key_field()


class UseVoucherInput(graphene.InputObjectType):  # type: ignore[misc]
    code = graphene.String(required=True, description="The voucher's code as the member shows it.")
    idempotency_key = idempotency_key_field()


class VoucherPayload(graphene.ObjectType):  # type: ignore[misc]
    """The voucher, and the member after the change."""

    voucher = graphene.Field(Voucher, description="The voucher, null when userErrors says why not.")
    member = graphene.Field("coalition.graphql.members.types.Member", description="The member after it.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class CreateReward(BaseMutation, access=Access.MERCHANT, input_type=CreateRewardInput, output=RewardPayload):
    """Publish a reward the calling merchant gives for points."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        return {"reward": await rewards.create_reward(
            info.context.db, merchant_id=info.context.merchant_id, name=input.name, points_cost=input.points_cost,
            description=input.description, stock=input.stock, valid_from=input.valid_from,
            valid_until=input.valid_until, voucher_valid_days=input.voucher_valid_days,
            idempotency_key=input.idempotency_key, now=utcnow())}


class ClaimReward(BaseMutation, access=Access.MERCHANT_OR_MEMBER, input_type=ClaimRewardInput,
                  output=VoucherPayload):
    """Claim a reward for its points: a merchant at its till (its own reward), or the member from its wallet."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        reward_id = decode_input_id(info, input.reward_id, "Reward", "rewardId")
        caller = info.context.require_caller()
        who = ({"merchant_id": info.context.merchant_id} if caller.role == Role.MERCHANT
               else {"member_id": info.context.member_id})
        result = await vouchers.claim_reward(
            info.context.services.ledger, reward_id=reward_id, loyalty_id=input.loyalty_id,
            member_proof=input.member_proof, idempotency_key=input.idempotency_key, now=utcnow(), **who)
        return {"voucher": result.voucher, "member": result.member}


class UseVoucher(BaseMutation, access=Access.MERCHANT, input_type=UseVoucherInput, output=VoucherPayload):
    """Mark a voucher of one of the calling merchant's rewards used, at the till."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        result = await vouchers.use_voucher(info.context.services.ledger, merchant_id=info.context.merchant_id,
                                            code=input.code, idempotency_key=input.idempotency_key, now=utcnow())
        return {"voucher": result.voucher, "member": result.member}


class RewardQueries(graphene.ObjectType):  # type: ignore[misc]
    rewards = graphene.Field(RewardConnection, required=True, merchant_id=graphene.ID(), first=graphene.Int(),
                             after=graphene.String(),
                             description="Rewards of the network (or of one merchant), newest first.")

    @staticmethod
    async def resolve_rewards(root: Any, info: ResolveInfo, merchant_id: str | None = None,
                              first: int | None = None, after: str | None = None) -> Any:
        info.context.require_caller()
        size = page_size(first)
        merchant = None if merchant_id is None else decode_id(info, merchant_id, "Merchant")
        rows = await rewards.list_rewards(info.context.db, merchant_id=merchant, before_id=decode_cursor(info, after),
                                          limit=size + 1)
        return connection(info, RewardEdge, RewardConnection, rows, size)


class RewardMutations(graphene.ObjectType):  # type: ignore[misc]
    create_reward = CreateReward.Field(required=True, description="Publish a reward (merchant).")
    claim_reward = ClaimReward.Field(required=True, description="Claim a reward (merchant at the till, or the member).")
    use_voucher = UseVoucher.Field(required=True, description="Mark a voucher used (the reward's merchant).")
