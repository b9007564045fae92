"""Gift card root fields: a balance check by code, and the liability per issuer."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.errors import DomainError
from coalition.graphql.access import gift_card_scope
from coalition.graphql.context import ResolveInfo
from coalition.graphql.errors import CodedError
from coalition.graphql.giftcards.types import GiftCard, GiftCardLiability


class GiftCardQueries(graphene.ObjectType):  # type: ignore[misc]
    gift_card = graphene.Field(GiftCard, code=graphene.String(required=True), description=(
        "The card with this code (any caller with a key who has the code), or null. Failed look-ups are "
        "counted per caller; past COALITION_GIFT_CARD_LOOKUP_FAILURES per window the answer is RATE_LIMITED."))
    gift_card_liabilities = graphene.List(graphene.NonNull(GiftCardLiability), required=True, description=(
        "Outstanding gift card money per issuer: a merchant its own, an admin every issuer's."))

    @staticmethod
    async def resolve_gift_card(root: Any, info: ResolveInfo, code: str) -> Any:
        caller = info.context.require_caller()
        try:
            return await info.context.gift_cards.look_up(caller_key=caller.rate_limit_key, code=code)
        except DomainError as error:
            raise CodedError(error.message, code=error.code) from None

    @staticmethod
    async def resolve_gift_card_liabilities(root: Any, info: ResolveInfo) -> Any:
        return await info.context.gift_cards.liabilities(issuer_merchant_id=gift_card_scope(info))
