"""``subscription { transactions { ... } }``: committed ledger transactions, live (coalition/live/)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import graphene

from coalition.graphql.access import live_scope
from coalition.graphql.context import ResolveInfo
from coalition.graphql.errors import CodedError
from coalition.graphql.ledger.types import Transaction
from coalition.ledger.models import Entry, EntryKind


def entry_of(event: dict[str, Any]) -> Entry:
    return Entry.from_values(
        id=event["entry_id"], kind=EntryKind(event["kind"]), member_id=event["member_id"],
        merchant_id=event["merchant_id"], points=event["points"], amount_minor=event.get("amount_minor"),
        reference=event.get("reference"), hold_id=event.get("hold_id"), reverses_id=event.get("reverses_id"),
        created_at=dt.datetime.fromisoformat(event["created_at"]))


class Subscription(graphene.ObjectType):  # type: ignore[misc]
    transactions = graphene.Field(
        Transaction, required=True,
        description="Each ledger transaction as it commits: a merchant's own, a member's own, every one for the "
                    "admin. Over the graphql-transport-ws protocol on /graphql.")

    @staticmethod
    async def subscribe_transactions(root: Any, info: ResolveInfo) -> AsyncIterator[dict[str, Any]]:
        merchant_id, member_id = live_scope(info)
        broker = info.context.services.live
        if broker is None:
            raise CodedError("this process serves no live events", code="OPERATION_NOT_SUPPORTED")
        return broker.open(merchant_id=merchant_id, member_id=member_id)

    @staticmethod
    def resolve_transactions(root: Any, info: ResolveInfo) -> Entry:
        return entry_of(root)
