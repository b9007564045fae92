"""Programs errors. Every one has a code the API returns in ``userErrors``.

DomainError (coalition.errors)
├── InvalidInput
│   ├── INVALID_NAME / INVALID_POINTS / INVALID_STOCK / INVALID_VALIDITY / INVALID_STAMPS
│   ├── INVALID_AMOUNT            minPurchaseMinor out of range
│   ├── INVALID_QUEST             visits, window, shops or dates out of range
│   └── INVALID_VOUCHER_CODE      not the shape of a voucher code
├── NotFound
│   ├── REWARD_NOT_FOUND          unknown, or another merchant's reward (the same answer)
│   ├── VOUCHER_NOT_FOUND         unknown code, or a voucher of another merchant's reward
│   └── MERCHANT_NOT_FOUND        a quest names a shop that is not a partner
├── Conflict
│   ├── IDEMPOTENCY_KEY_CONFLICT
│   ├── VOUCHER_ALREADY_USED
│   ├── VOUCHER_EXPIRED
│   └── VOUCHER_CANCELLED
└── Refused
    ├── REWARD_INACTIVE           not yet valid, no longer valid, or withdrawn
    ├── OUT_OF_STOCK
    └── (the ledger's: INSUFFICIENT_POINTS, MEMBER_PROOF_REQUIRED, MEMBER_OWES_POINTS, ...)
"""

from __future__ import annotations

from coalition.errors import Conflict, NotFound, Refused


class RewardNotFound(NotFound):
    code = "REWARD_NOT_FOUND"


class VoucherNotFound(NotFound):
    code = "VOUCHER_NOT_FOUND"


class RewardInactive(Refused):
    code = "REWARD_INACTIVE"


class OutOfStock(Refused):
    code = "OUT_OF_STOCK"


class VoucherClosed(Conflict):
    """Used, expired or cancelled: ``code`` says which."""


__all__ = ["OutOfStock", "RewardInactive", "RewardNotFound", "VoucherClosed", "VoucherNotFound"]
