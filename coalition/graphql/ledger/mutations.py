"""Ledger mutations (merchant): decode, call the ledger, map the result (on :class:`BaseMutation`)."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.errors import DomainError
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import decode_input_id
from coalition.graphql.ledger.types import LedgerPayload
from coalition.ledger.core import LedgerResult
from coalition.ledger.service import Ledger
from coalition.programs import purchases


def idempotency_key_field() -> Any:
    """Every ledger write's ``idempotencyKey`` input field."""
    return graphene.String(required=True, description="Makes a retry safe: same key, same result.")


def optional_idempotency_key_field(what: str) -> Any:
    """The ``idempotencyKey`` of a write that took none at first (optional, so older clients keep working)."""
    return graphene.String(description=f"Optional; makes a retry safe: same key and input, {what}.")


def member_proof_field() -> Any:
    """The ``memberProof`` input field of the writes that take a member's points."""
    return graphene.String(description=(
        "The member's proof of presence: the short-lived code in the member's wallet (Member.presenceCode). "
        "Needed beyond the points the network policy lets a merchant take without it (redeemWithoutProofPoints)."))


class EarnPointsInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(required=True, description="The member's loyalty ID (dashes and case don't matter).")
    purchase_amount_minor = graphene.Int(required=True, description="What the customer paid, minor units, > 0.")
    reference = graphene.String(description="The merchant's receipt number (at most 128 characters).")
    idempotency_key = idempotency_key_field()


class RedeemPointsInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(required=True, description="The member's loyalty ID.")
    points = graphene.Int(required=True, description="Points to honor, > 0.")
    reference = graphene.String(description="The merchant's receipt number.")
    idempotency_key = idempotency_key_field()
    member_proof = member_proof_field()


class AuthorizeRedemptionInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(required=True, description="The member's loyalty ID.")
    points = graphene.Int(required=True, description="Points to reserve, > 0.")
    expires_in_seconds = graphene.Int(description="Seconds until an uncaptured hold releases itself (default 900).")
    idempotency_key = idempotency_key_field()
    member_proof = member_proof_field()


class CaptureRedemptionInput(graphene.InputObjectType):  # type: ignore[misc]
    hold_id = graphene.ID(required=True, description=(
        "The hold: its own id (LedgerPayload.hold.id) or the id of the HOLD transaction authorizeRedemption "
        "returned (LedgerPayload.transaction.id)."))
    points = graphene.Int(description="Points to honor (default: all held); the rest are released.")
    idempotency_key = idempotency_key_field()


class VoidRedemptionInput(graphene.InputObjectType):  # type: ignore[misc]
    hold_id = graphene.ID(required=True, description=(
        "The hold to release: its own id or the id of its HOLD transaction (as for captureRedemption)."))
    idempotency_key = idempotency_key_field()


class ReverseTransactionInput(graphene.InputObjectType):  # type: ignore[misc]
    transaction_id = graphene.ID(required=True, description="One of this merchant's EARN, REDEEM or CAPTURE.")
    reason = graphene.String(description="Why (at most 500 characters); kept as the reversal's reference.")
    idempotency_key = idempotency_key_field()


def decode_hold_reference(info: ResolveInfo, global_id: str) -> tuple[int, bool]:
    """``(id, is_transaction_id)`` of a Hold ID or a Transaction ID (contract additions: a client of the
    contract knows only the HOLD transaction's id). A hold's id is its HOLD entry's id, so both name the
    same row; the flag only lets the ledger say NOT_A_HOLD for a transaction of another kind."""
    try:
        return decode_input_id(info, global_id, "Hold", "holdId"), False
    except DomainError:
        pass
    try:
        return decode_input_id(info, global_id, "Transaction", "holdId"), True
    except DomainError:
        raise DomainError(f"{global_id[:60]!r} is neither a Hold ID nor a Transaction ID", code="INVALID_ID",
                          field="holdId") from None


class LedgerMutation(BaseMutation):
    """A merchant's write to the ledger: ``write`` is its one ledger call; the payload is built here."""

    class Meta:
        abstract = True

    access = Access.MERCHANT
    Output = LedgerPayload

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        result = await cls.write(info.context.services.ledger, info.context.merchant_id, info, input)
        return {"transaction": result.entry, "member": result.member, "hold": result.hold}

    @classmethod
    async def write(cls, ledger: Ledger, merchant_id: int, info: ResolveInfo, input: Any) -> LedgerResult:
        raise NotImplementedError


class EarnPoints(LedgerMutation, input_type=EarnPointsInput):
    """Issue points for a purchase at the calling merchant's earn rate (rounded down)."""

    @classmethod
    async def write(cls, ledger: Ledger, merchant_id: int, info: ResolveInfo, input: Any) -> LedgerResult:
        # The one live earn (coalition/programs/purchases.py): the ledger, then stamp cards and quests.
        return await purchases.earn(ledger, merchant_id=merchant_id, loyalty_id=input.loyalty_id,
                                    purchase_amount_minor=input.purchase_amount_minor, reference=input.reference,
                                    idempotency_key=input.idempotency_key)


class RedeemPoints(LedgerMutation, input_type=RedeemPointsInput):
    """Honor a member's points at the calling merchant, whoever issued them."""

    @classmethod
    async def write(cls, ledger: Ledger, merchant_id: int, info: ResolveInfo, input: Any) -> LedgerResult:
        return await ledger.redeem(merchant_id=merchant_id, loyalty_id=input.loyalty_id, points=input.points,
                                   reference=input.reference, idempotency_key=input.idempotency_key,
                                   member_proof=input.member_proof)


class AuthorizeRedemption(LedgerMutation, input_type=AuthorizeRedemptionInput):
    """Reserve points before the payment clears; capture or void later."""

    @classmethod
    async def write(cls, ledger: Ledger, merchant_id: int, info: ResolveInfo, input: Any) -> LedgerResult:
        return await ledger.authorize(merchant_id=merchant_id, loyalty_id=input.loyalty_id, points=input.points,
                                      expires_in_s=input.expires_in_seconds, idempotency_key=input.idempotency_key,
                                      member_proof=input.member_proof)


class CaptureRedemption(LedgerMutation, input_type=CaptureRedemptionInput):
    """Honor all or part of a hold; the rest goes back to the member."""

    @classmethod
    async def write(cls, ledger: Ledger, merchant_id: int, info: ResolveInfo, input: Any) -> LedgerResult:
        hold_id, by_transaction_id = decode_hold_reference(info, input.hold_id)
        return await ledger.capture(merchant_id=merchant_id, hold_id=hold_id, by_transaction_id=by_transaction_id,
                                    points=input.points, idempotency_key=input.idempotency_key)


class VoidRedemption(LedgerMutation, input_type=VoidRedemptionInput):
    """Release a hold's points back to the member."""

    @classmethod
    async def write(cls, ledger: Ledger, merchant_id: int, info: ResolveInfo, input: Any) -> LedgerResult:
        hold_id, by_transaction_id = decode_hold_reference(info, input.hold_id)
        return await ledger.void(merchant_id=merchant_id, hold_id=hold_id, by_transaction_id=by_transaction_id,
                                 idempotency_key=input.idempotency_key)


class ReverseTransaction(LedgerMutation, input_type=ReverseTransactionInput):
    """Reverse one of the calling merchant's own transactions (a refund)."""

    @classmethod
    async def write(cls, ledger: Ledger, merchant_id: int, info: ResolveInfo, input: Any) -> LedgerResult:
        transaction_id = decode_input_id(info, input.transaction_id, "Transaction", "transactionId")
        return await purchases.reverse(ledger, merchant_id=merchant_id, transaction_id=transaction_id,
                                       reason=input.reason, idempotency_key=input.idempotency_key)


class LedgerMutations(graphene.ObjectType):  # type: ignore[misc]
    earn_points = EarnPoints.Field(required=True, description="Issue points for a purchase (merchant).")
    redeem_points = RedeemPoints.Field(required=True, description="Honor points (merchant).")
    authorize_redemption = AuthorizeRedemption.Field(required=True, description="Reserve points (merchant).")
    capture_redemption = CaptureRedemption.Field(required=True, description="Honor reserved points (merchant).")
    void_redemption = VoidRedemption.Field(required=True, description="Release reserved points (merchant).")
    reverse_transaction = ReverseTransaction.Field(required=True, description="Reverse an own transaction (merchant).")
