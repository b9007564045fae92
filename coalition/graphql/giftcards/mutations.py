"""Gift card mutations: merchants sell, spend, hold, capture, void and refund; members attach."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import decode_input_id
from coalition.graphql.giftcards.types import (
    HOLD_ID,
    TRANSACTION_ID,
    GiftCardPayload,
    IssueGiftCardPayload,
    payload_fields,
)
from coalition.graphql.ledger.mutations import idempotency_key_field


def _currency() -> Any:
    return graphene.String(description="ISO 4217 code; when given it must be the network's currency.")


class IssueGiftCardInput(graphene.InputObjectType):  # type: ignore[misc]
    amount_minor = graphene.Int(required=True, description="The card's value in minor units, > 0, at most the "
                                                           "per-card maximum (COALITION_GIFT_CARD_MAX_MINOR).")
    reference = graphene.String(description="The merchant's receipt number.")
    currency = _currency()
    loyalty_id = graphene.String(description=(
        "The buyer's loyalty ID: the card goes to the member's wallet and, where the network's policy says so "
        "(COALITION_GIFT_CARD_EARNS_POINTS), earns points like a purchase of its amount."))
    idempotency_key = idempotency_key_field()


class RedeemGiftCardInput(graphene.InputObjectType):  # type: ignore[misc]
    code = graphene.String(required=True, description="The card's code (dashes and case don't matter).")
    amount_minor = graphene.Int(required=True, description="Money to spend, minor units, > 0.")
    reference = graphene.String(description="The merchant's receipt number.")
    currency = _currency()
    idempotency_key = idempotency_key_field()


class AuthorizeGiftCardInput(graphene.InputObjectType):  # type: ignore[misc]
    code = graphene.String(required=True, description="The card's code.")
    amount_minor = graphene.Int(required=True, description="Money to reserve, minor units, > 0.")
    expires_in_seconds = graphene.Int(description="Seconds until an uncaptured hold releases itself (default 900).")
    reference = graphene.String(description="The merchant's receipt number.")
    currency = _currency()
    idempotency_key = idempotency_key_field()


class CaptureGiftCardInput(graphene.InputObjectType):  # type: ignore[misc]
    hold_id = graphene.ID(required=True, description="GiftCardPayload.holdId of authorizeGiftCard.")
    amount_minor = graphene.Int(description="Money to spend (default: all held); the rest goes back to the card.")
    idempotency_key = idempotency_key_field()


class VoidGiftCardInput(graphene.InputObjectType):  # type: ignore[misc]
    hold_id = graphene.ID(required=True, description="GiftCardPayload.holdId of authorizeGiftCard.")
    idempotency_key = idempotency_key_field()


class RefundGiftCardInput(graphene.InputObjectType):  # type: ignore[misc]
    transaction_id = graphene.ID(required=True, description="One of this merchant's spends (redeem or capture).")
    reason = graphene.String(description="Why (at most 128 characters).")
    idempotency_key = idempotency_key_field()


class AttachGiftCardInput(graphene.InputObjectType):  # type: ignore[misc]
    code = graphene.String(required=True, description="The card's code.")


class GiftCardMutation(BaseMutation):
    class Meta:
        abstract = True

    access = Access.MERCHANT
    Output = GiftCardPayload


def _caller_key(info: ResolveInfo) -> str:
    return info.context.require_caller().rate_limit_key


class IssueGiftCard(BaseMutation, access=Access.MERCHANT, input_type=IssueGiftCardInput,
                    output=IssueGiftCardPayload):
    """Sell a gift card at the calling merchant's till; the payload's code is shown this once."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        result = await info.context.gift_cards.issue(
            merchant_id=info.context.merchant_id, amount_minor=input.amount_minor, reference=input.reference,
            currency=input.currency, loyalty_id=input.loyalty_id, idempotency_key=input.idempotency_key)
        return {**payload_fields(info, result), "code": result.code, "points_earned": result.points_earned}


class RedeemGiftCard(GiftCardMutation, input_type=RedeemGiftCardInput):
    """Spend money from a card at the calling merchant (any partner); partial spends leave the rest."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        return payload_fields(info, await info.context.gift_cards.redeem(
            merchant_id=info.context.merchant_id, caller_key=_caller_key(info), code=input.code,
            amount_minor=input.amount_minor, reference=input.reference, currency=input.currency,
            idempotency_key=input.idempotency_key))


class AuthorizeGiftCard(GiftCardMutation, input_type=AuthorizeGiftCardInput):
    """Reserve money on a card for a later captureGiftCard (a POS that authorizes first)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        return payload_fields(info, await info.context.gift_cards.authorize(
            merchant_id=info.context.merchant_id, caller_key=_caller_key(info), code=input.code,
            amount_minor=input.amount_minor, expires_in_s=input.expires_in_seconds, reference=input.reference,
            currency=input.currency, idempotency_key=input.idempotency_key))


class CaptureGiftCard(GiftCardMutation, input_type=CaptureGiftCardInput):
    """Spend all or part of the calling merchant's gift card hold; the rest goes back to the card."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        hold_id = decode_input_id(info, input.hold_id, HOLD_ID, "holdId")
        return payload_fields(info, await info.context.gift_cards.capture(
            merchant_id=info.context.merchant_id, hold_id=hold_id, amount_minor=input.amount_minor,
            idempotency_key=input.idempotency_key))


class VoidGiftCard(GiftCardMutation, input_type=VoidGiftCardInput):
    """Release the calling merchant's gift card hold back to the card."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        hold_id = decode_input_id(info, input.hold_id, HOLD_ID, "holdId")
        return payload_fields(info, await info.context.gift_cards.void(
            merchant_id=info.context.merchant_id, hold_id=hold_id, idempotency_key=input.idempotency_key))


class RefundGiftCard(GiftCardMutation, input_type=RefundGiftCardInput):
    """Give one of the calling merchant's spends back to the card (once)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        entry_id = decode_input_id(info, input.transaction_id, TRANSACTION_ID, "transactionId")
        return payload_fields(info, await info.context.gift_cards.refund(
            merchant_id=info.context.merchant_id, entry_id=entry_id, reason=input.reason,
            idempotency_key=input.idempotency_key))


class AttachGiftCard(BaseMutation, access=Access.MEMBER, input_type=AttachGiftCardInput, output=GiftCardPayload):
    """Put a gift card in the calling member's wallet (Member.giftCards)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        card = await info.context.gift_cards.attach(member_id=info.context.member_id, code=input.code,
                                                     caller_key=_caller_key(info))
        return {"gift_card": card}


class GiftCardMutations(graphene.ObjectType):  # type: ignore[misc]
    issue_gift_card = IssueGiftCard.Field(required=True, description="Sell a gift card (merchant).")
    redeem_gift_card = RedeemGiftCard.Field(required=True, description="Spend from a gift card (any merchant).")
    authorize_gift_card = AuthorizeGiftCard.Field(required=True, description="Reserve gift card money (merchant).")
    capture_gift_card = CaptureGiftCard.Field(required=True, description="Spend a gift card hold (its merchant).")
    void_gift_card = VoidGiftCard.Field(required=True, description="Release a gift card hold (its merchant).")
    refund_gift_card = RefundGiftCard.Field(required=True, description="Refund a spend to its card (its merchant).")
    attach_gift_card = AttachGiftCard.Field(required=True, description="Put a gift card in the wallet (the member).")
