from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.access import may_see_merchant
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.types import Node, connection_types
from coalition.graphql.dataloaders import MerchantByIdLoader
from coalition.partners.models import Merchant as MerchantModel
from coalition.partners.models import MerchantStatus as MerchantStatusValue

MerchantStatus = graphene.Enum.from_enum(MerchantStatusValue, description="Whether a merchant may write to the ledger.")


class Merchant(graphene.ObjectType):  # type: ignore[misc]
    """A partner shop of the network. Every caller with a key may see the directory of partners."""

    class Meta:
        interfaces = (Node,)
        possible_types = (MerchantModel,)  # resolved from ORM rows

    name = graphene.String(required=True, description="The shop's name.")
    category = graphene.String(description="What kind of shop it is, e.g. bakery.")
    status = graphene.Field(MerchantStatus, required=True, description="ACTIVE, or SUSPENDED by an admin.")
    earn_rate_points_per_unit = graphene.Int(required=True, description="Points per whole currency unit spent.")

    @staticmethod
    async def fetch(info: ResolveInfo, merchant_id: int) -> Any:
        if not may_see_merchant(info):
            return None
        return await info.context.loader(MerchantByIdLoader).load(merchant_id)


MerchantEdge, MerchantConnection = connection_types(
    Merchant, name="Merchant", noun="merchant", nouns="merchants", order="oldest first",
    edges_description="The merchants in this page.")
