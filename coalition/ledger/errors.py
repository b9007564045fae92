"""Ledger errors. Every one has a code the API returns in ``userErrors``.

DomainError (coalition.errors)
├── InvalidInput
│   ├── INVALID_LOYALTY_ID        mistyped loyalty ID (check character) or bad characters
│   ├── INVALID_AMOUNT            purchase amount not a positive integer within range
│   ├── INVALID_POINTS            points not a positive integer within range
│   ├── INVALID_EXPIRY            expiresInSeconds out of range
│   └── PURCHASE_TOO_SMALL        the purchase earns no whole point
├── NotFound
│   ├── MEMBER_NOT_FOUND
│   ├── HOLD_NOT_FOUND            unknown, or another merchant's hold (or HOLD transaction)
│   └── TRANSACTION_NOT_FOUND     unknown, or another merchant's transaction
├── Conflict
│   ├── IDEMPOTENCY_KEY_CONFLICT
│   ├── HOLD_EXPIRED              the authorization expired and released its points
│   ├── HOLD_ALREADY_CLOSED       captured or voided already
│   ├── ALREADY_REVERSED
│   └── POINTS_HELD               points of this earn are reserved by an open hold
└── Refused
    ├── INSUFFICIENT_POINTS
    ├── MEMBER_OWES_POINTS        a reversal left the member owing points; redemptions wait
    ├── BALANCE_LIMIT_EXCEEDED    the balance would pass 2,147,483,647 points
    ├── CAPTURE_EXCEEDS_HOLD
    ├── NOT_REVERSIBLE            holds are voided, not reversed; reversals are final
    ├── NOT_A_HOLD                capture/void named one of the merchant's transactions that is no HOLD
    ├── MEMBER_PROOF_REQUIRED     beyond the allowance without proof of presence (ledger/presence.py)
    ├── INVALID_MEMBER_PROOF      a wrong, expired or used proof of presence (ledger/presence.py)
    └── MERCHANT_SUSPENDED
"""

from __future__ import annotations

from coalition.errors import Conflict, InvalidInput, NotFound, Refused


class MemberNotFound(NotFound):
    code = "MEMBER_NOT_FOUND"


class HoldNotFound(NotFound):
    code = "HOLD_NOT_FOUND"


class TransactionNotFound(NotFound):
    code = "TRANSACTION_NOT_FOUND"


class InsufficientPoints(Refused):
    code = "INSUFFICIENT_POINTS"


class MerchantSuspended(Refused):
    code = "MERCHANT_SUSPENDED"


class NotAHold(Refused):
    code = "NOT_A_HOLD"


__all__ = [
    "Conflict",
    "HoldNotFound",
    "InsufficientPoints",
    "InvalidInput",
    "MemberNotFound",
    "MerchantSuspended",
    "NotAHold",
    "NotFound",
    "Refused",
    "TransactionNotFound",
]
