from __future__ import annotations

from typing import Any

import graphene

from coalition.db import utcnow
from coalition.graphql.access import may_see_member_private, visible_member
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.types import Node, connection, decode_cursor, page_size
from coalition.graphql.ledger.types import TransactionConnection, TransactionEdge
from coalition.graphql.members.disputes import DisputeConnection, DisputeEdge
from coalition.graphql.programs.tiers import TierStatus, resolve_tier_status
from coalition.ledger.presence import presence_code
from coalition.ledger.queries import member_history
from coalition.members.disputes import list_disputes
from coalition.members.models import Member as MemberModel
from coalition.members.service import tier_for


class Member(graphene.ObjectType):  # type: ignore[misc]
    """A customer of the network, known at every partner by one loyalty ID."""

    class Meta:
        interfaces = (Node,)
        possible_types = (MemberModel,)  # resolved from ORM rows

    loyalty_id = graphene.String(required=True, description="The shared ID, same at every partner (XXXX-XXXX-XXXX).")
    referral_code = graphene.String(required=True, description="This member's own code to share with friends.")
    balance = graphene.Int(required=True, description="Spendable points (excludes held points).")
    held_points = graphene.Int(required=True, description="Points reserved by open authorizations.")
    owed_points = graphene.Int(
        required=True, description="Points owed after a reversed purchase; repaid by new earns before redemptions."
    )
    lifetime_points = graphene.Int(required=True, description="Points earned across the network, net of reversals.")
    tier = graphene.String(required=True, description="BASIC, SILVER (1,000), GOLD (5,000), PLATINUM (20,000).")
    tier_status = graphene.Field(TierStatus, required=True, description=(
        "The status tier under the network's tier policy: points earned in its qualifying window, the next tier."))
    created_at = graphene.DateTime(required=True, description="When the member enrolled.")
    email = graphene.String(description="Contact e-mail; visible to the member only.")
    phone = graphene.String(description="Contact phone; visible to the member only.")
    presence_code = graphene.String(description=(
        "The member's proof of presence, for the member only (null for anyone else): 8 digits that change every "
        "30 seconds (the previous code is accepted too), each good for one redemption. The customer shows it at "
        "the till; the merchant sends it as memberProof."))
    transactions = graphene.Field(
        TransactionConnection, required=True, first=graphene.Int(), after=graphene.String(),
        description="History, newest first. A merchant sees only its own transactions with this member.",
    )
    gift_cards = graphene.List(graphene.NonNull("coalition.graphql.giftcards.types.GiftCard"), description=(
        "Gift cards the member attached to the wallet (attachGiftCard): for the member itself; null for anyone else."))
    disputes = graphene.Field(
        DisputeConnection, first=graphene.Int(), after=graphene.String(),
        description="The member's disputes, newest first: for the member itself and admins; null for a merchant.",
    )

    @staticmethod
    async def fetch(info: ResolveInfo, member_id: int) -> Any:
        return await visible_member(info, member_id)

    @staticmethod
    def resolve_held_points(root: Any, info: ResolveInfo) -> int:
        return int(root.held)

    @staticmethod
    def resolve_owed_points(root: Any, info: ResolveInfo) -> int:
        return int(root.owed)

    @staticmethod
    def resolve_tier(root: Any, info: ResolveInfo) -> str:
        return tier_for(root.lifetime_points)

    @staticmethod
    async def resolve_tier_status(root: Any, info: ResolveInfo) -> TierStatus:
        return await resolve_tier_status(root.id, info)

    @staticmethod
    def _own_contact(root: Any, info: ResolveInfo, encrypted: bytes | None) -> str | None:
        caller = info.context.caller
        if encrypted is None or caller is None or caller.member_id != root.id:
            return None
        return str(info.context.services.keys.decrypt(encrypted))

    @staticmethod
    def resolve_presence_code(root: Any, info: ResolveInfo) -> str | None:
        caller = info.context.caller
        if caller is None or caller.role.value != "MEMBER" or caller.member_id != root.id:
            return None
        return presence_code(info.context.services.keys, root.loyalty_id, utcnow())

    @staticmethod
    def resolve_email(root: Any, info: ResolveInfo) -> str | None:
        return Member._own_contact(root, info, root.email_encrypted)

    @staticmethod
    def resolve_phone(root: Any, info: ResolveInfo) -> str | None:
        return Member._own_contact(root, info, root.phone_encrypted)

    @staticmethod
    async def resolve_gift_cards(root: Any, info: ResolveInfo) -> Any:
        caller = info.context.caller
        if caller is None or caller.role.value != "MEMBER" or caller.member_id != root.id:
            return None
        return await info.context.gift_cards.member_cards(root.id)

    @staticmethod
    async def resolve_disputes(root: Any, info: ResolveInfo, first: int | None = None, after: str | None = None) -> Any:
        if not may_see_member_private(info, root.id):
            return None
        size = page_size(first)
        rows = await list_disputes(info.context.db, member_id=root.id, before_id=decode_cursor(info, after),
                                   limit=size + 1)
        return connection(info, DisputeEdge, DisputeConnection, rows, size)

    @staticmethod
    async def resolve_transactions(root: Any, info: ResolveInfo,
                                   first: int | None = None, after: str | None = None) -> Any:
        caller = info.context.require_caller()
        size = page_size(first)
        merchant_id = caller.merchant_id if caller.role.value == "MERCHANT" else None
        rows = await member_history(info.context.db, root.id, merchant_id=merchant_id,
                                    before_id=decode_cursor(info, after), limit=size + 1)
        return connection(info, TransactionEdge, TransactionConnection, rows, size)
