"""Ledger mutations: decode, check the caller is a merchant, call the ledger, map the result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import graphene

from coalition.errors import DomainError
from coalition.graphql.core.mutations import payload_of
from coalition.graphql.core.types import decode_input_id
from coalition.graphql.ledger.types import LedgerPayload
from coalition.ledger.core import LedgerResult
from coalition.ledger.service import Ledger


class EarnPointsInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(required=True, description="The member's loyalty ID (dashes and case don't matter).")
    purchase_amount_minor = graphene.Int(required=True, description="What the customer paid, minor units, > 0.")
    reference = graphene.String(description="The merchant's receipt number (at most 128 characters).")
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same result.")


class RedeemPointsInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(required=True, description="The member's loyalty ID.")
    points = graphene.Int(required=True, description="Points to honor, > 0.")
    reference = graphene.String(description="The merchant's receipt number.")
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same result.")
    member_proof = graphene.String(description=(
        "The member's proof of presence: the short-lived code in the member's wallet (Member.presenceCode). "
        "Needed beyond the points the network policy lets a merchant take without it (redeemWithoutProofPoints)."))


class AuthorizeRedemptionInput(graphene.InputObjectType):  # type: ignore[misc]
    loyalty_id = graphene.String(required=True, description="The member's loyalty ID.")
    points = graphene.Int(required=True, description="Points to reserve, > 0.")
    expires_in_seconds = graphene.Int(description="Seconds until an uncaptured hold releases itself (default 900).")
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same result.")
    member_proof = graphene.String(description=(
        "The member's proof of presence: the short-lived code in the member's wallet (Member.presenceCode). "
        "Needed beyond the points the network policy lets a merchant take without it (redeemWithoutProofPoints)."))


class CaptureRedemptionInput(graphene.InputObjectType):  # type: ignore[misc]
    hold_id = graphene.ID(required=True, description=(
        "The hold: its own id (LedgerPayload.hold.id) or the id of the HOLD transaction authorizeRedemption "
        "returned (LedgerPayload.transaction.id)."))
    points = graphene.Int(description="Points to honor (default: all held); the rest are released.")
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same result.")


class VoidRedemptionInput(graphene.InputObjectType):  # type: ignore[misc]
    hold_id = graphene.ID(required=True, description=(
        "The hold to release: its own id or the id of its HOLD transaction (as for captureRedemption)."))
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same result.")


class ReverseTransactionInput(graphene.InputObjectType):  # type: ignore[misc]
    transaction_id = graphene.ID(required=True, description="One of this merchant's EARN, REDEEM or CAPTURE.")
    reason = graphene.String(description="Why (at most 500 characters); kept as the reversal's reference.")
    idempotency_key = graphene.String(required=True, description="Makes a retry safe: same key, same result.")


def decode_hold_reference(info: Any, global_id: str) -> tuple[int, bool]:
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


Operation = Callable[[Ledger, int, Any, Any], Awaitable[LedgerResult]]  # (ledger, merchant, input, info)


def ledger_mutation(name: str, input_type: type, description: str, operation: Operation) -> Any:
    """A mutation that checks for a merchant caller, runs one ledger operation and returns a LedgerPayload."""

    async def mutate(root: Any, info: Any, input: Any) -> Any:
        merchant_id = info.context.require_merchant()

        async def call() -> dict[str, Any]:
            result = await operation(info.context.services.ledger, merchant_id, input, info)
            return {"transaction": result.entry, "member": result.member, "hold": result.hold}

        return await payload_of(LedgerPayload, call)

    arguments = type("Arguments", (), {"input": input_type(required=True)})
    return type(name, (graphene.Mutation,), {
        "__doc__": description, "Arguments": arguments, "Output": LedgerPayload, "mutate": staticmethod(mutate),
    })


EarnPoints = ledger_mutation(
    "EarnPoints", EarnPointsInput, "Issue points for a purchase at the calling merchant's earn rate (rounded down).",
    lambda ledger, merchant_id, i, info: ledger.earn(
        merchant_id=merchant_id, loyalty_id=i.loyalty_id, purchase_amount_minor=i.purchase_amount_minor,
        reference=i.reference, idempotency_key=i.idempotency_key),
)
RedeemPoints = ledger_mutation(
    "RedeemPoints", RedeemPointsInput, "Honor a member's points at the calling merchant, whoever issued them.",
    lambda ledger, merchant_id, i, info: ledger.redeem(
        merchant_id=merchant_id, loyalty_id=i.loyalty_id, points=i.points, reference=i.reference,
        idempotency_key=i.idempotency_key, member_proof=i.member_proof),
)
AuthorizeRedemption = ledger_mutation(
    "AuthorizeRedemption", AuthorizeRedemptionInput, "Reserve points before the payment clears; capture or void later.",
    lambda ledger, merchant_id, i, info: ledger.authorize(
        merchant_id=merchant_id, loyalty_id=i.loyalty_id, points=i.points, expires_in_s=i.expires_in_seconds,
        idempotency_key=i.idempotency_key, member_proof=i.member_proof),
)
CaptureRedemption = ledger_mutation(
    "CaptureRedemption", CaptureRedemptionInput, "Honor all or part of a hold; the rest goes back to the member.",
    lambda ledger, merchant_id, i, info: ledger.capture(
        merchant_id=merchant_id, hold_id=(hold := decode_hold_reference(info, i.hold_id))[0], by_transaction_id=hold[1],
        points=i.points, idempotency_key=i.idempotency_key),
)
VoidRedemption = ledger_mutation(
    "VoidRedemption", VoidRedemptionInput, "Release a hold's points back to the member.",
    lambda ledger, merchant_id, i, info: ledger.void(
        merchant_id=merchant_id, hold_id=(hold := decode_hold_reference(info, i.hold_id))[0], by_transaction_id=hold[1],
        idempotency_key=i.idempotency_key),
)
ReverseTransaction = ledger_mutation(
    "ReverseTransaction", ReverseTransactionInput, "Reverse one of the calling merchant's own transactions (a refund).",
    lambda ledger, merchant_id, i, info: ledger.reverse(
        merchant_id=merchant_id, transaction_id=decode_input_id(info, i.transaction_id, "Transaction", "transactionId"),
        reason=i.reason, idempotency_key=i.idempotency_key),
)


class LedgerMutations(graphene.ObjectType):  # type: ignore[misc]
    earn_points = EarnPoints.Field(required=True, description="Issue points for a purchase (merchant).")
    redeem_points = RedeemPoints.Field(required=True, description="Honor points (merchant).")
    authorize_redemption = AuthorizeRedemption.Field(required=True, description="Reserve points (merchant).")
    capture_redemption = CaptureRedemption.Field(required=True, description="Honor reserved points (merchant).")
    void_redemption = VoidRedemption.Field(required=True, description="Release reserved points (merchant).")
    reverse_transaction = ReverseTransaction.Field(required=True, description="Reverse an own transaction (merchant).")
