"""Program errors (each a :class:`~coalition.errors.DomainError` with a specific code).

DomainError
├── InvalidInput
│   ├── InvalidTierPolicy    INVALID_TIERS, INVALID_WINDOW, INVALID_GRACE_DAYS, INVALID_BONUS_FUNDER, ...
│   └── InvalidCampaign      INVALID_NAME, INVALID_KIND, INVALID_MULTIPLIER, INVALID_BONUS_POINTS,
│                            INVALID_SEGMENT, INVALID_CONTROL_PERCENT, INVALID_PERIOD
├── NotFound
│   └── CampaignNotFound     CAMPAIGN_NOT_FOUND
└── Refused
    ├── OverlappingCampaign  OVERLAPPING_CAMPAIGN
    └── SegmentNotAnalyzed   SEGMENT_NOT_ANALYZED (no stored analysis names the segment's members yet)
"""

from __future__ import annotations

from coalition.errors import InvalidInput, NotFound, Refused


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
