"""What the client's methods return: plain, typed, frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Member:
    id: str
    loyalty_id: str
    balance: int
    held_points: int
    owed_points: int
    lifetime_points: int
    tier: str

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> Member | None:
        if data is None:
            return None
        return cls(data["id"], data["loyaltyId"], data["balance"], data["heldPoints"], data["owedPoints"],
                   data["lifetimePoints"], data["tier"])


@dataclass(frozen=True)
class Transaction:
    id: str
    kind: str
    points: int
    amount_minor: int | None
    reference: str | None
    created_at: str

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> Transaction | None:
        if data is None:
            return None
        return cls(data["id"], data["kind"], data["points"], data["amountMinor"], data["reference"], data["createdAt"])


@dataclass(frozen=True)
class Hold:
    id: str
    status: str
    points: int
    captured_points: int | None
    expires_at: str

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> Hold | None:
        if data is None:
            return None
        return cls(data["id"], data["status"], data["points"], data["capturedPoints"], data["expiresAt"])


@dataclass(frozen=True)
class LedgerResult:
    """An earn, redemption, hold, capture, void or reversal: what it wrote and the member after it."""

    transaction: Transaction | None
    member: Member | None
    hold: Hold | None


@dataclass(frozen=True)
class Enrollment:
    member: Member
    claim_code: str | None  # hand it to the customer: they exchange it for their own token
    claim_url: str | None
    qr_code: str | None


MEMBER_FIELDS = "id loyaltyId balance heldPoints owedPoints lifetimePoints tier"
TRANSACTION_FIELDS = "id kind points amountMinor reference createdAt"
HOLD_FIELDS = "id status points capturedPoints expiresAt"
LEDGER_FIELDS = (f"transaction {{ {TRANSACTION_FIELDS} }} member {{ {MEMBER_FIELDS} }} hold {{ {HOLD_FIELDS} }} "
                 "userErrors { field code message }")


def ledger_result(payload: dict[str, Any]) -> LedgerResult:
    return LedgerResult(Transaction.parse(payload.get("transaction")), Member.parse(payload.get("member")),
                        Hold.parse(payload.get("hold")))
