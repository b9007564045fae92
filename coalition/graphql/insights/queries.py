"""``Query.insights``: stored analysis results, scoped to the caller."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.auth.models import Role
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.types import decode_id
from coalition.graphql.errors import Forbidden
from coalition.graphql.insights.types import InsightsView, NetworkInsights


class InsightQueries(graphene.ObjectType):  # type: ignore[misc]
    insights = graphene.Field(
        NetworkInsights, merchant_id=graphene.ID(),
        description="What the network learned, as of the last `coalition analyze` run; null before the first. "
                    "Admins: the network view, or one merchant's with merchantId. Merchants: their own view.",
    )

    @staticmethod
    async def resolve_insights(root: Any, info: ResolveInfo, merchant_id: str | None = None) -> Any:
        caller = info.context.require_staff()
        wanted = None if merchant_id is None else decode_id(info, merchant_id, "Merchant")
        if caller.role == Role.MERCHANT:
            if wanted not in (None, caller.merchant_id):
                raise Forbidden("a merchant sees only its own insights")
            wanted = caller.merchant_id
        stored = await info.context.insights.view(wanted)
        return None if stored is None else InsightsView(stored, wanted, caller.role == Role.ADMIN)
