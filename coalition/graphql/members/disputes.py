"""Disputes: a member disputes its own redemption; admins list, resolve and dismiss them."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.access import may_see_member_private
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import (
    Node,
    UserError,
    connection,
    connection_types,
    decode_cursor,
    decode_input_id,
    page_size,
)
from coalition.graphql.dataloaders import MemberByIdLoader, MerchantByIdLoader
from coalition.graphql.ledger.types import Transaction
from coalition.members.disputes import close_dispute, dispute_transaction, get_dispute, list_disputes
from coalition.members.models import Dispute as DisputeModel
from coalition.members.models import DisputeStatus as DisputeStatusValue

DisputeStatus = graphene.Enum.from_enum(DisputeStatusValue, description="Where a dispute stands.")


class DisputeResolution(graphene.Enum):  # type: ignore[misc]
    """How an admin closes a dispute."""

    RESOLVED = "RESOLVED"
    DISMISSED = "DISMISSED"


class Dispute(graphene.ObjectType):  # type: ignore[misc]
    """A member's objection to one of its redemptions. Seen by admins and by the member itself."""

    class Meta:
        interfaces = (Node,)
        possible_types = (DisputeModel,)

    status = graphene.Field(DisputeStatus, required=True, description="OPEN, RESOLVED or DISMISSED.")
    reason = graphene.String(required=True, description="The member's words.")
    transaction = graphene.Field(Transaction, description="The disputed transaction.")
    member = graphene.Field("coalition.graphql.members.types.Member", description="The member who disputes.")
    merchant = graphene.Field("coalition.graphql.partners.types.Merchant",
                              description="The merchant that made the transaction.")
    created_at = graphene.DateTime(required=True, description="When the member disputed it.")
    resolved_at = graphene.DateTime(description="When an admin closed it.")
    resolution_note = graphene.String(description="The admin's note on closing it.")

    @staticmethod
    async def fetch(info: ResolveInfo, dispute_id: int) -> Any:
        info.context.require_caller()
        dispute = await get_dispute(info.context.db, dispute_id)
        if dispute is None or not may_see_member_private(info, dispute.member_id):
            return None
        return dispute

    @staticmethod
    async def resolve_transaction(root: Any, info: ResolveInfo) -> Any:
        return await Transaction.fetch(info, root.entry_id)

    @staticmethod
    async def resolve_member(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MemberByIdLoader).load(root.member_id)

    @staticmethod
    async def resolve_merchant(root: Any, info: ResolveInfo) -> Any:
        return None if root.merchant_id is None else await info.context.loader(MerchantByIdLoader).load(
            root.merchant_id)


DisputeEdge, DisputeConnection = connection_types(
    Dispute, name="Dispute", noun="dispute", nouns="disputes", order="newest first")


class DisputeQueries(graphene.ObjectType):  # type: ignore[misc]
    disputes = graphene.Field(DisputeConnection, required=True, first=graphene.Int(), after=graphene.String(),
                              status=graphene.Argument(DisputeStatus, description="Only disputes in this state."),
                              description="Members' disputes, newest first (admin).")

    @staticmethod
    async def resolve_disputes(root: Any, info: ResolveInfo, first: int | None = None, after: str | None = None,
                               status: Any = None) -> Any:
        info.context.require_admin()
        size = page_size(first)
        rows = await list_disputes(info.context.db, before_id=decode_cursor(info, after), limit=size + 1,
                                   status=DisputeStatusValue(status.value if hasattr(status, "value") else status)
                                   if status is not None else None)
        return connection(info, DisputeEdge, DisputeConnection, rows, size)


class DisputePayload(graphene.ObjectType):  # type: ignore[misc]
    """The dispute opened (or found, on a retry) or closed."""

    dispute = graphene.Field(Dispute, description="The dispute.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class DisputeTransactionInput(graphene.InputObjectType):  # type: ignore[misc]
    transaction_id = graphene.ID(required=True, description="A REDEEM, HOLD or CAPTURE from your own history.")
    reason = graphene.String(required=True, description="What happened, in your words (at most 500 characters).")
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same dispute.")


class DisputeTransaction(BaseMutation, access=Access.MEMBER, input_type=DisputeTransactionInput, output=DisputePayload):
    """Dispute one of your own redemptions (member token). The network's admins review it."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        entry_id = decode_input_id(info, input.transaction_id, "Transaction", "transactionId")
        dispute = await dispute_transaction(info.context.db, member_id=info.context.member_id, entry_id=entry_id,
                                            reason=input.reason, idempotency_key=input.idempotency_key)
        return {"dispute": dispute}


class ResolveDisputeInput(graphene.InputObjectType):  # type: ignore[misc]
    dispute_id = graphene.ID(required=True, description="The open dispute.")
    status = DisputeResolution(required=True, description="RESOLVED or DISMISSED.")
    note = graphene.String(description="Why (at most 500 characters); the member's history shows any ledger fix.")


class ResolveDispute(BaseMutation, access=Access.ADMIN, input_type=ResolveDisputeInput, output=DisputePayload):
    """Close an open dispute (admin). A refund or reversal, if due, is a separate ledger operation."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        dispute_id = decode_input_id(info, input.dispute_id, "Dispute", "disputeId")
        status = input.status.value if hasattr(input.status, "value") else input.status
        dispute = await close_dispute(info.context.db, dispute_id, status=DisputeStatusValue(status), note=input.note)
        return {"dispute": dispute}
