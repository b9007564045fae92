"""Settlement queries: the batches (admin: all; merchant: its view of each) and the network policy."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.access import settlement_scope
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.types import connection, decode_cursor, page_size
from coalition.graphql.settlement.types import (
    NetworkPolicy,
    SettlementBatchConnection,
    SettlementBatchEdge,
)
from coalition.settlement.policy import current_policy
from coalition.settlement.service import list_batches


class SettlementQueries(graphene.ObjectType):  # type: ignore[misc]
    settlement_batches = graphene.Field(
        SettlementBatchConnection, required=True, first=graphene.Int(), after=graphene.String(),
        description="Closed settlement batches, newest first (admin; a merchant sees only its own lines).")
    network_policy = graphene.Field(
        NetworkPolicy, required=True, at=graphene.DateTime(description="The version in force then (default: now)."),
        description="The network's settlement policy (anyone may read it).")

    @staticmethod
    async def resolve_settlement_batches(root: Any, info: ResolveInfo, first: int | None = None,
                                         after: str | None = None) -> Any:
        settlement_scope(info)
        size = page_size(first)
        rows = await list_batches(info.context.db, after_id=decode_cursor(info, after), limit=size + 1)
        return connection(info, SettlementBatchEdge, SettlementBatchConnection, rows, size)

    @staticmethod
    async def resolve_network_policy(root: Any, info: ResolveInfo, at: Any = None) -> Any:
        services = info.context.services
        return await current_policy(services.db, services.settings, at)
