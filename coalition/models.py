"""Imports every model so ``Base.metadata`` is complete (Alembic, tests, ``create_all``)."""

from coalition.auth.models import ApiKey
from coalition.console.models import ConsoleSession, ConsoleUser
from coalition.console.rollup_models import DashboardMember, DashboardMerchant, DashboardRollup, DashboardWeek
from coalition.db import Base
from coalition.giftcards.models import GiftCard, GiftEntry, GiftHold, GiftPosting
from coalition.ledger.models import Allocation, Entry, Hold, Lot, Posting
from coalition.members.models import Dispute, Member, MemberCredential
from coalition.network.models import FraudReview, InsightResult, InsightRun
from coalition.partners.models import Merchant
from coalition.programs.campaign_models import Campaign, CampaignAudience
from coalition.programs.reward_models import (
    Quest,
    QuestCompletion,
    QuestMerchant,
    QuestVisit,
    Reward,
    Stamp,
    StampCard,
    StampProgress,
    Voucher,
)
from coalition.programs.tier_models import EarnBonus, MemberTier, TierPolicyVersion
from coalition.settlement.models import NetworkPolicy, SettlementBatch, SettlementLine, SettlementPosition
from coalition.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = ["Allocation", "ApiKey", "Base", "Campaign", "CampaignAudience", "ConsoleSession", "ConsoleUser",
           "DashboardMember", "DashboardMerchant", "DashboardRollup", "DashboardWeek", "Dispute", "EarnBonus", "Entry",
           "FraudReview", "GiftCard", "GiftEntry", "GiftHold", "GiftPosting",
           "Hold", "InsightResult", "InsightRun", "Lot", "Member", "MemberCredential", "MemberTier", "Merchant",
           "NetworkPolicy", "Posting", "Quest", "QuestCompletion", "QuestMerchant", "QuestVisit", "Reward",
           "SettlementBatch", "SettlementLine", "SettlementPosition", "Stamp", "StampCard", "StampProgress",
           "TierPolicyVersion", "Voucher", "WebhookDelivery", "WebhookEndpoint"]
