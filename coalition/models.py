"""Imports every model so ``Base.metadata`` is complete (Alembic, tests, ``create_all``)."""

from coalition.auth.models import ApiKey
from coalition.console.models import ConsoleSession, ConsoleUser, FraudReview
from coalition.db import Base
from coalition.ledger.models import Allocation, Entry, Hold, Lot, Posting
from coalition.members.models import Dispute, Member, MemberCredential
from coalition.network.models import InsightResult, InsightRun
from coalition.partners.models import Merchant
from coalition.settlement.models import NetworkPolicy, SettlementBatch, SettlementLine, SettlementPosition

__all__ = ["Allocation", "ApiKey", "Base", "ConsoleSession", "ConsoleUser", "Dispute", "Entry", "FraudReview",
           "Hold", "InsightResult", "InsightRun", "Lot", "Member",
           "MemberCredential", "Merchant",
           "NetworkPolicy", "Posting", "SettlementBatch", "SettlementLine", "SettlementPosition"]
