from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.access import may_see_merchant
from coalition.graphql.core.types import Node, PageInfo
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
    async def fetch(info: Any, merchant_id: int) -> Any:
        if not may_see_merchant(info):
            return None
        return await info.context.loader(MerchantByIdLoader).load(merchant_id)


class MerchantEdge(graphene.ObjectType):  # type: ignore[misc]
    """A merchant in a page."""

    node = graphene.Field(Merchant, required=True, description="The merchant.")
    cursor = graphene.String(required=True, description="Where this merchant sits in the list.")


class MerchantConnection(graphene.ObjectType):  # type: ignore[misc]
    """A page of merchants, oldest first."""

    edges = graphene.List(graphene.NonNull(MerchantEdge), required=True, description="The merchants in this page.")
    page_info = graphene.Field(PageInfo, required=True, description="Whether more follow.")
