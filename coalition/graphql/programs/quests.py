"""Partner quests: types, ``Member.quests``' progress type, createQuest (admin)."""

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
from coalition.graphql.programs.loaders import QuestByIdLoader
from coalition.programs import quests
from coalition.programs.reward_models import Quest as QuestModel
from coalition.programs.reward_models import QuestFunding as QuestFundingValue

QuestFunding = graphene.Enum.from_enum(QuestFundingValue, description=(
    "Who pays a quest's bonus: the NETWORK, or the quest's PARTNERS split evenly (the first bonus mod n shops "
    "by id pay one point more)."))


class Quest(graphene.ObjectType):  # type: ignore[misc]
    """Visit K of these shops within D days, get B bonus points: a public offer of a group of partners."""

    class Meta:
        interfaces = (Node,)
        possible_types = (QuestModel,)

    name = graphene.String(required=True, description="The quest's name.")
    merchants = graphene.List(graphene.NonNull("coalition.graphql.partners.types.Merchant"), required=True,
                              description="The shops whose purchases count as visits.")
    visits_required = graphene.Int(required=True, description="Different shops to visit.")
    window_days = graphene.Int(required=True, description="Within how many days (a rolling window).")
    bonus_points = graphene.Int(required=True, description="The bonus when done.")
    funding = graphene.Field(QuestFunding, required=True, description="Who pays the bonus.")
    starts_at = graphene.DateTime(required=True, description="Visits count from.")
    ends_at = graphene.DateTime(required=True, description="Visits count until.")

    @staticmethod
    async def fetch(info: ResolveInfo, quest_id: int) -> Any:
        if not may_see_offers(info):
            return None
        return await info.context.loader(QuestByIdLoader).load(quest_id)

    @staticmethod
    async def resolve_merchants(root: Any, info: ResolveInfo) -> Any:
        ids = await quests.quest_merchant_ids(info.context.db, root.id)
        return [m for m in await info.context.loader(MerchantByIdLoader).load_many(ids) if m is not None]


class QuestProgress(graphene.ObjectType):  # type: ignore[misc]
    """A member's progress on one quest."""

    quest = graphene.Field(Quest, required=True, description="The quest.")
    shops_visited = graphene.Int(required=True, description="Different shops of the quest visited in the window.")
    visits_required = graphene.Int(required=True, description="Different shops to visit.")
    completed_at = graphene.DateTime(description="When the member completed it (the bonus was paid); null: not yet.")


def quest_progress(rows: Any) -> list[QuestProgress]:
    return [QuestProgress(quest=quest, shops_visited=visited, visits_required=quest.visits_required,
                          completed_at=completed_at) for quest, visited, completed_at in rows]


class CreateQuestInput(graphene.InputObjectType):  # type: ignore[misc]
    name = graphene.String(required=True, description="The quest's name (1 to 100 characters).")
    merchant_ids = graphene.List(graphene.NonNull(graphene.ID), required=True, description="1 to 50 shops.")
    visits_required = graphene.Int(required=True, description="Different shops to visit (1 to the shops named).")
    window_days = graphene.Int(required=True, description="Within how many days (1 to 366).")
    bonus_points = graphene.Int(required=True, description="The bonus (1 to 1,000,000 points).")
    funding = graphene.Field(QuestFunding, required=True, description="Who pays the bonus.")
    starts_at = graphene.DateTime(required=True, description="Visits count from.")
    ends_at = graphene.DateTime(required=True, description="Visits count until (at most two years later).")
    idempotency_key = idempotency_key_field()


class QuestPayload(graphene.ObjectType):  # type: ignore[misc]
    """The quest created."""

    quest = graphene.Field(Quest, description="The quest, null when userErrors says why not.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class CreateQuest(BaseMutation, access=Access.ADMIN, input_type=CreateQuestInput, output=QuestPayload):
    """Define a partner quest (admin)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        merchant_ids = [decode_input_id(info, m, "Merchant", "merchantIds") for m in input.merchant_ids[:51]]
        funding = input.funding.value if hasattr(input.funding, "value") else str(input.funding)
        return {"quest": await quests.create_quest(
            info.context.db, name=input.name, merchant_ids=merchant_ids, visits_required=input.visits_required,
            window_days=input.window_days, bonus_points=input.bonus_points, funding=funding,
            starts_at=input.starts_at, ends_at=input.ends_at, idempotency_key=input.idempotency_key, now=utcnow())}


class QuestMutations(graphene.ObjectType):  # type: ignore[misc]
    create_quest = CreateQuest.Field(required=True, description="Define a partner quest (admin).")
