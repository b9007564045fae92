"""Stamp cards: types, ``Member.stampCards``' progress type, createStampCard."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.db import utcnow
from coalition.graphql.access import may_see_offers
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import Node, UserError, decode_input_id
from coalition.graphql.dataloaders import MerchantByIdLoader
from coalition.graphql.ledger.mutations import idempotency_key_field
from coalition.graphql.programs.loaders import RewardByIdLoader, StampCardByIdLoader
from coalition.graphql.programs.rewards import Reward
from coalition.programs import stamps
from coalition.programs.reward_models import StampCard as StampCardModel


class StampCard(graphene.ObjectType):  # type: ignore[misc]
    """A merchant's stamp card: each purchase of at least the minimum earns a stamp; a full card, a voucher."""

    class Meta:
        interfaces = (Node,)
        possible_types = (StampCardModel,)

    merchant = graphene.Field("coalition.graphql.partners.types.Merchant", required=True,
                              description="The merchant whose purchases stamp it.")
    name = graphene.String(required=True, description="The card's name.")
    stamps_required = graphene.Int(required=True, description="Stamps that fill the card.")
    min_purchase_minor = graphene.Int(required=True,
                                      description="A purchase of at least this (through earnPoints) earns one stamp.")
    reward = graphene.Field(Reward, required=True, description="The voucher issued when the card is full.")
    active = graphene.Boolean(required=True, description="Whether purchases stamp it.")

    @staticmethod
    async def fetch(info: ResolveInfo, card_id: int) -> Any:
        if not may_see_offers(info):
            return None
        return await info.context.loader(StampCardByIdLoader).load(card_id)

    @staticmethod
    async def resolve_merchant(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MerchantByIdLoader).load(root.merchant_id)

    @staticmethod
    async def resolve_reward(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(RewardByIdLoader).load(root.reward_id)


class StampProgress(graphene.ObjectType):  # type: ignore[misc]
    """A member's progress on one stamp card."""

    stamp_card = graphene.Field(StampCard, required=True, description="The card.")
    stamps = graphene.Int(required=True, description="Stamps on the current card.")
    completed_cards = graphene.Int(required=True, description="Cards filled so far (each issued a voucher).")


def stamp_progress(rows: Any) -> list[StampProgress]:
    return [StampProgress(stamp_card=StampCardModel.from_values(**{c.key: getattr(row, c.key)
                                                                    for c in StampCardModel.__table__.c}),
                          stamps=stamps.stamps_on_current_card(row.total_stamps, row.completed_cards,
                                                               row.stamps_required),
                          completed_cards=row.completed_cards) for row in rows]


class CreateStampCardInput(graphene.InputObjectType):  # type: ignore[misc]
    name = graphene.String(required=True, description="The card's name (1 to 100 characters).")
    stamps_required = graphene.Int(required=True, description="Stamps that fill the card (1 to 100).")
    min_purchase_minor = graphene.Int(required=True, description="Smallest purchase that earns a stamp (>= 0).")
    reward_id = graphene.ID(required=True, description="One of the calling merchant's rewards.")
    idempotency_key = idempotency_key_field()


class StampCardPayload(graphene.ObjectType):  # type: ignore[misc]
    """The stamp card created."""

    stamp_card = graphene.Field(StampCard, description="The card, null when userErrors says why not.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class CreateStampCard(BaseMutation, access=Access.MERCHANT, input_type=CreateStampCardInput,
                      output=StampCardPayload):
    """Define a stamp card of the calling merchant, giving one of its rewards."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        reward_id = decode_input_id(info, input.reward_id, "Reward", "rewardId")
        return {"stamp_card": await stamps.create_stamp_card(
            info.context.services.ledger, merchant_id=info.context.merchant_id, name=input.name,
            stamps_required=input.stamps_required, min_purchase_minor=input.min_purchase_minor, reward_id=reward_id,
            idempotency_key=input.idempotency_key, now=utcnow())}


class StampCardMutations(graphene.ObjectType):  # type: ignore[misc]
    create_stamp_card = CreateStampCard.Field(required=True, description="Define a stamp card (merchant).")
