"""Root query fields: node, viewer, network, merchants, member."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.auth.models import Role
from coalition.errors import DomainError
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.types import InvalidId, Node, connection, decode_cursor, ids_of, page_size
from coalition.graphql.errors import CodedError
from coalition.graphql.giftcards.types import GiftCard
from coalition.graphql.ledger.types import Hold, Transaction
from coalition.graphql.members.disputes import Dispute
from coalition.graphql.members.types import Member
from coalition.graphql.network.types import Network, network_of
from coalition.graphql.partners.types import Merchant, MerchantConnection, MerchantEdge
from coalition.graphql.programs.campaigns import Campaign
from coalition.graphql.settlement.queries import SettlementQueries
from coalition.graphql.settlement.types import SettlementBatch
from coalition.graphql.settlement.whatif import WhatIfQueries
from coalition.members.service import find_member
from coalition.partners.service import list_merchants

NODE_TYPES: dict[str, Any] = {"Merchant": Merchant, "Member": Member, "Transaction": Transaction, "Hold": Hold,
                              "SettlementBatch": SettlementBatch, "Dispute": Dispute, "GiftCard": GiftCard,
                              "Campaign": Campaign}


class AdminViewer(graphene.ObjectType):  # type: ignore[misc]
    """An admin key."""

    network = graphene.Field(Network, required=True, description="The network the admin runs.")

    @staticmethod
    def resolve_network(root: Any, info: ResolveInfo) -> Network:
        return network_of(info)


class MerchantViewer(graphene.ObjectType):  # type: ignore[misc]
    """A merchant API key."""

    merchant = graphene.Field(Merchant, required=True, description="The calling merchant.")


class MemberViewer(graphene.ObjectType):  # type: ignore[misc]
    """A member token."""

    member = graphene.Field(Member, required=True, description="The calling member.")


class Viewer(graphene.Union):  # type: ignore[misc]
    """Who is calling."""

    class Meta:
        types = (AdminViewer, MerchantViewer, MemberViewer)


class Query(SettlementQueries, WhatIfQueries, graphene.ObjectType):  # type: ignore[misc]
    node = graphene.Field(Node, id=graphene.ID(required=True),
                          description="Any object by global ID, if the caller may see it.")
    viewer = graphene.Field(Viewer, description="Who is calling; null without credentials.")
    network = graphene.Field(Network, required=True, description="The network's public facts (no key needed).")
    merchants = graphene.Field(MerchantConnection, required=True, first=graphene.Int(), after=graphene.String(),
                               description="The partner directory, oldest first.")
    member = graphene.Field(Member, loyalty_id=graphene.String(required=True),
                            description="A member by loyalty ID (admin or merchant); null if none has it.")

    @staticmethod
    async def resolve_node(root: Any, info: ResolveInfo, id: str) -> Any:
        info.context.require_caller()
        found = ids_of(info).decode_any(id, NODE_TYPES)
        if found is None:
            raise InvalidId(f"{id[:60]!r} is not an ID from this API")
        type_name, value = found
        # Each type's fetch applies coalition.graphql.access: an object the caller may not
        # see is null, exactly like one that does not exist.
        return await NODE_TYPES[type_name].fetch(info, value)

    @staticmethod
    async def resolve_viewer(root: Any, info: ResolveInfo) -> Any:
        caller = info.context.caller
        if caller is None:
            return None
        if caller.role == Role.ADMIN:
            return AdminViewer()
        if caller.role == Role.MERCHANT and caller.merchant_id is not None:
            return MerchantViewer(merchant=await Merchant.fetch(info, caller.merchant_id))
        if caller.member_id is not None:
            return MemberViewer(member=await Member.fetch(info, caller.member_id))
        return None

    @staticmethod
    def resolve_network(root: Any, info: ResolveInfo) -> Network:
        return network_of(info)

    @staticmethod
    async def resolve_merchants(root: Any, info: ResolveInfo,
                                first: int | None = None, after: str | None = None) -> Any:
        info.context.require_caller()
        size = page_size(first)
        rows = await list_merchants(info.context.db, after_id=decode_cursor(info, after), limit=size + 1)
        return connection(info, MerchantEdge, MerchantConnection, rows, size)

    @staticmethod
    async def resolve_member(root: Any, info: ResolveInfo, loyalty_id: str) -> Any:
        info.context.require_staff()
        try:
            return await find_member(info.context.db, loyalty_id)
        except DomainError as error:
            if error.code == "MEMBER_NOT_FOUND":
                return None
            raise CodedError(error.message, code=error.code) from None
