from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.access import may_see_ledger_row
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.types import Node, UserError, connection_types
from coalition.graphql.dataloaders import (
    EntryByIdLoader,
    HoldByIdLoader,
    MemberByIdLoader,
    MerchantByIdLoader,
    ReversalByEntryIdLoader,
)
from coalition.ledger.models import Entry, EntryKind
from coalition.ledger.models import Hold as HoldModel
from coalition.ledger.models import HoldStatus as HoldStatusValue

TransactionKind = graphene.Enum.from_enum(
    EntryKind, name="TransactionKind", description="What a ledger transaction did."
)
HoldStatus = graphene.Enum.from_enum(HoldStatusValue, description="Where a two-phase redemption stands.")


class Transaction(graphene.ObjectType):  # type: ignore[misc]
    """One ledger transaction, seen from the member's side."""

    class Meta:
        interfaces = (Node,)
        possible_types = (Entry,)  # resolved from ORM rows

    kind = graphene.Field(TransactionKind, required=True, description="EARN, REDEEM, HOLD, CAPTURE, ...")
    points = graphene.Int(
        required=True,
        description="Signed change of the member's spendable points: +earn, -redeem, -hold, +released on capture/void.",
    )
    amount_minor = graphene.Int(description="For EARN: the purchase amount in minor units.")
    merchant = graphene.Field("coalition.graphql.partners.types.Merchant",
                              description="The merchant that made it; null for the network's own (expiry).")
    member = graphene.Field("coalition.graphql.members.types.Member", required=True, description="The member.")
    reference = graphene.String(description="The merchant's receipt number, or the reversal's reason.")
    created_at = graphene.DateTime(required=True, description="When it was written.")
    effective_at = graphene.DateTime(required=True, description=(
        "When it happened: createdAt, except for imported history, which keeps its original date."))
    reverses = graphene.Field(lambda: Transaction, description="For a REVERSAL: the transaction it reverses.")
    reversed_by = graphene.Field(lambda: Transaction, description="The REVERSAL of this transaction, if any.")
    hold = graphene.Field(lambda: Hold, description="For HOLD, CAPTURE and VOID: the authorization.")

    @staticmethod
    async def fetch(info: ResolveInfo, entry_id: int) -> Any:
        entry = await info.context.loader(EntryByIdLoader).load(entry_id)
        return entry if entry is not None and may_see_ledger_row(info, entry.merchant_id, entry.member_id) else None

    @staticmethod
    def resolve_effective_at(root: Any, info: ResolveInfo) -> Any:
        # Rows the ledger builds from what it just wrote (Entry.from_values) may not carry the column.
        return root.__dict__.get("effective_at") or root.created_at

    @staticmethod
    async def resolve_merchant(root: Any, info: ResolveInfo) -> Any:
        if root.merchant_id is None:
            return None
        return await info.context.loader(MerchantByIdLoader).load(root.merchant_id)

    @staticmethod
    async def resolve_member(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MemberByIdLoader).load(root.member_id)

    @staticmethod
    async def resolve_reverses(root: Any, info: ResolveInfo) -> Any:
        return None if root.reverses_id is None else await Transaction.fetch(info, root.reverses_id)

    @staticmethod
    async def resolve_reversed_by(root: Any, info: ResolveInfo) -> Any:
        entry = await info.context.loader(ReversalByEntryIdLoader).load(root.id)
        return entry if entry is not None and may_see_ledger_row(info, entry.merchant_id, entry.member_id) else None

    @staticmethod
    async def resolve_hold(root: Any, info: ResolveInfo) -> Any:
        hold_id = root.id if root.kind == EntryKind.HOLD else root.hold_id
        return None if hold_id is None else await Hold.fetch(info, hold_id)


class Hold(graphene.ObjectType):  # type: ignore[misc]
    """A two-phase redemption: points reserved until captured, voided or expired."""

    class Meta:
        interfaces = (Node,)
        possible_types = (HoldModel,)

    status = graphene.Field(HoldStatus, required=True, description="AUTHORIZED, CAPTURED, VOIDED or EXPIRED.")
    points = graphene.Int(required=True, description="Points reserved.")
    captured_points = graphene.Int(description="Points honored at capture.")
    expires_at = graphene.DateTime(required=True, description="When an uncaptured authorization releases itself.")
    merchant = graphene.Field("coalition.graphql.partners.types.Merchant", required=True,
                              description="The merchant that reserved the points.")
    member = graphene.Field("coalition.graphql.members.types.Member", required=True, description="The member.")

    @staticmethod
    async def fetch(info: ResolveInfo, hold_id: int) -> Any:
        hold = await info.context.loader(HoldByIdLoader).load(hold_id)
        return hold if hold is not None and may_see_ledger_row(info, hold.merchant_id, hold.member_id) else None

    @staticmethod
    async def resolve_merchant(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MerchantByIdLoader).load(root.merchant_id)

    @staticmethod
    async def resolve_member(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MemberByIdLoader).load(root.member_id)


TransactionEdge, TransactionConnection = connection_types(
    Transaction, name="Transaction", noun="transaction", nouns="transactions", order="newest first")


class LedgerPayload(graphene.ObjectType):  # type: ignore[misc]
    """What every ledger mutation returns."""

    transaction = graphene.Field(Transaction, description="The transaction written (or found, on a retry).")
    member = graphene.Field("coalition.graphql.members.types.Member", description="The member after it.")
    hold = graphene.Field(Hold, description="For authorize, capture and void: the hold.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True,
                                description="Why nothing was written, when something was wrong.")
