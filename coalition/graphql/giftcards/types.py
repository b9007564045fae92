"""Gift card types: the card (no code: it is shown once, at issue), the payloads, the liability."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.giftcards.models import GiftCard as GiftCardModel
from coalition.graphql.access import may_see_gift_card
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.scalars import BigInt
from coalition.graphql.core.types import Node, UserError, encode_id
from coalition.graphql.dataloaders import MerchantByIdLoader

# Global ID types of a gift card's transactions and holds (named by capture, void and refund).
TRANSACTION_ID = "GiftCardTransaction"
HOLD_ID = "GiftCardHold"


class GiftCard(graphene.ObjectType):  # type: ignore[misc]
    """Stored value in the network currency, sold at one partner and spent at any."""

    class Meta:
        interfaces = (Node,)
        possible_types = (GiftCardModel,)

    last4 = graphene.String(required=True, description="The code's last four characters (the code is shown once).")
    currency = graphene.String(required=True, description="ISO 4217 currency of the amounts (the network's).")
    balance_minor = graphene.Field(BigInt, required=True, description="Spendable money, minor units.")
    held_minor = graphene.Field(BigInt, required=True, description="Money reserved by open authorizations.")
    initial_minor = graphene.Field(BigInt, required=True, description="What the card was sold for, minor units.")
    issuer = graphene.Field("coalition.graphql.partners.types.Merchant", required=True,
                            description="The partner that sold it (and holds the money).")
    expires_at = graphene.DateTime(description="When the unspent balance expires; null: never.")
    created_at = graphene.DateTime(required=True, description="When it was sold.")

    @staticmethod
    async def fetch(info: ResolveInfo, card_id: int) -> Any:
        card = await info.context.gift_cards.card_by_id(card_id)
        return card if card is not None and may_see_gift_card(info, card.issuer_merchant_id, card.member_id) else None

    @staticmethod
    async def resolve_issuer(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MerchantByIdLoader).load(root.issuer_merchant_id)


class GiftCardPayload(graphene.ObjectType):  # type: ignore[misc]
    """What redeem, authorize, capture, void, refund and attach return."""

    gift_card = graphene.Field(GiftCard, description="The card after the write (or as found, on a retry).")
    transaction_id = graphene.ID(description="The gift card transaction written: refundGiftCard takes it.")
    hold_id = graphene.ID(description="For authorize, capture and void: the hold (captureGiftCard takes it).")
    amount_minor = graphene.Field(BigInt, description="Signed change of the card's spendable balance.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True,
                                description="Why nothing was written, when something was wrong.")


class IssueGiftCardPayload(graphene.ObjectType):  # type: ignore[misc]
    """A sold card and its code: the code is shown this once (a retry returns the card, not the code)."""

    gift_card = graphene.Field(GiftCard, description="The card after the write (or as found, on a retry).")
    transaction_id = graphene.ID(description="The gift card transaction written: refundGiftCard takes it.")
    hold_id = graphene.ID(description="For authorize, capture and void: the hold (captureGiftCard takes it).")
    amount_minor = graphene.Field(BigInt, description="Signed change of the card's spendable balance.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True,
                                description="Why nothing was written, when something was wrong.")
    code = graphene.String(description="The card's code, XXXX-XXXX-XXXX-XXXX-XXX: print or hand it over now.")
    points_earned = graphene.Int(description="Points the buyer (loyaltyId) earned, where the policy gives them.")


class GiftCardLiability(graphene.ObjectType):  # type: ignore[misc]
    """An issuer's outstanding gift card money (balances and holds of the cards it sold)."""

    issuer = graphene.Field("coalition.graphql.partners.types.Merchant", required=True,
                            description="The partner that sold the cards.")
    cards = graphene.Int(required=True, description="Cards it sold.")
    outstanding_minor = graphene.Field(BigInt, required=True, description="What they still hold, minor units.")
    currency = graphene.String(required=True, description="ISO 4217 currency.")

    @staticmethod
    async def resolve_issuer(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MerchantByIdLoader).load(root.issuer_merchant_id)


def payload_fields(info: ResolveInfo, result: Any) -> dict[str, Any]:
    """A payload's fields from a :class:`coalition.giftcards.service.GiftResult`."""
    entry = result.entry
    hold_id = result.hold.id if result.hold is not None else None
    return {"gift_card": result.card, "transaction_id": encode_id(info, TRANSACTION_ID, entry.id),
            "hold_id": None if hold_id is None else encode_id(info, HOLD_ID, hold_id),
            "amount_minor": entry.amount_minor}
