"""Program errors (each a :class:`~coalition.errors.DomainError` with a code the API returns in ``userErrors``).

DomainError (coalition.errors)
├── InvalidInput
│   ├── InvalidTierPolicy         INVALID_TIERS, INVALID_WINDOW, INVALID_GRACE_DAYS, INVALID_BONUS_FUNDER, ...
│   ├── InvalidCampaign           INVALID_NAME, INVALID_KIND, INVALID_MULTIPLIER, INVALID_BONUS_POINTS,
│   │                             INVALID_SEGMENT, INVALID_CONTROL_PERCENT, INVALID_PERIOD
│   ├── INVALID_NAME / INVALID_POINTS / INVALID_STOCK / INVALID_VALIDITY / INVALID_STAMPS (rewards, cards)
│   ├── INVALID_AMOUNT            minPurchaseMinor out of range
│   ├── INVALID_QUEST             visits, window, shops or dates out of range
│   └── INVALID_VOUCHER_CODE      not the shape of a voucher code
├── NotFound
│   ├── CampaignNotFound          CAMPAIGN_NOT_FOUND
│   ├── RewardNotFound            REWARD_NOT_FOUND: unknown, or another merchant's reward (the same answer)
│   ├── VoucherNotFound           VOUCHER_NOT_FOUND: unknown code, or a voucher of another merchant's reward
│   └── MERCHANT_NOT_FOUND        a quest names a shop that is not a partner
├── Conflict
│   ├── IDEMPOTENCY_KEY_CONFLICT
│   └── VoucherClosed             VOUCHER_ALREADY_USED, VOUCHER_EXPIRED, VOUCHER_CANCELLED
└── Refused
    ├── OverlappingCampaign       OVERLAPPING_CAMPAIGN
    ├── SegmentNotAnalyzed        SEGMENT_NOT_ANALYZED (no stored analysis names the segment's members yet)
    ├── RewardInactive            REWARD_INACTIVE: not yet valid, no longer valid, or withdrawn
    ├── OutOfStock                OUT_OF_STOCK
    └── (the ledger's: INSUFFICIENT_POINTS, MEMBER_PROOF_REQUIRED, MEMBER_OWES_POINTS, ...)
"""

from __future__ import annotations

from coalition.errors import Conflict, InvalidInput, NotFound, Refused


class InvalidTierPolicy(InvalidInput):
    code = "INVALID_TIER_POLICY"


class InvalidCampaign(InvalidInput):
    code = "INVALID_CAMPAIGN"


class CampaignNotFound(NotFound):
    code = "CAMPAIGN_NOT_FOUND"


class OverlappingCampaign(Refused):
    code = "OVERLAPPING_CAMPAIGN"


class SegmentNotAnalyzed(Refused):
    code = "SEGMENT_NOT_ANALYZED"


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
