"""Assembles the schema from each domain's queries and mutations."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.core.scalars import BigInt, require_offsets
from coalition.graphql.giftcards.mutations import GiftCardMutations
from coalition.graphql.giftcards.queries import GiftCardQueries
from coalition.graphql.insights.queries import InsightQueries
from coalition.graphql.ledger.mutations import LedgerMutations
from coalition.graphql.members.disputes import DisputeQueries
from coalition.graphql.members.mutations import MemberMutations
from coalition.graphql.partners.mutations import PartnerMutations
from coalition.graphql.programs.campaigns import CampaignMutations, CampaignQueries
from coalition.graphql.programs.tiers import TierMutations, TierQueries
from coalition.graphql.queries import Query as CoreQuery
from coalition.graphql.settlement.mutations import SettlementMutations
from coalition.graphql.settlement.reconcile import ReconcileMutations


class Query(InsightQueries, DisputeQueries, GiftCardQueries, CampaignQueries, TierQueries, CoreQuery):
    pass


class Mutation(PartnerMutations, MemberMutations, LedgerMutations, ReconcileMutations, SettlementMutations,
               GiftCardMutations, CampaignMutations, TierMutations):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation, types=[BigInt, graphene.Date])
require_offsets(schema.graphql_schema)


def graphql_schema() -> Any:
    """The graphql-core schema the HTTP endpoint executes."""
    return schema.graphql_schema


if __name__ == "__main__":  # python -m coalition.graphql.schema > schema.graphql
    print(schema, end="")
