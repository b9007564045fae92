"""Network insights as the API shows them: read from stored results (``coalition.network.store``).

Roots are the stored payloads' dicts (see ``coalition.network.jobs``); members and merchants
in them are ids, resolved through the request's DataLoaders.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import graphene

from coalition.errors import DomainError
from coalition.graphql.access import visible_member_ids
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.scalars import BigInt
from coalition.graphql.core.types import page_size
from coalition.graphql.errors import CodedError
from coalition.graphql.members.types import Member
from coalition.graphql.partners.types import Merchant
from coalition.members.service import find_member
from coalition.network.store import Stored

DAY_S = 86400


@dataclass(frozen=True)
class InsightsView:
    """What one caller may see: the network's scope (admin) or one merchant's."""

    stored: Stored
    merchant_id: int | None  # None: the network-wide view
    is_admin: bool


async def _visible_rows(info: ResolveInfo, rows: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The first ``size`` rows whose member the caller may see (coalition.graphql.access).

    A merchant's stored view already holds only its own members; this keeps it so if a
    stored result and the ledger ever disagree, and keeps a non-null ``member`` non-null.
    """
    visible = await visible_member_ids(info, [int(row["member_id"]) for row in rows])
    return [row for row in rows if int(row["member_id"]) in visible][:size]


async def _members(info: ResolveInfo, ids: list[int]) -> list[Any]:
    # Gathered, so the DataLoader sends one query for the whole list.
    found = await asyncio.gather(*(Member.fetch(info, member_id) for member_id in ids))
    return [m for m in found if m is not None]


async def _merchants(info: ResolveInfo, ids: list[int]) -> list[Any]:
    found = await asyncio.gather(*(Merchant.fetch(info, merchant_id) for merchant_id in ids))
    return [m for m in found if m is not None]


class ReferralInsight(graphene.ObjectType):  # type: ignore[misc]
    """An influential member of the referral graph."""

    member = graphene.Field(Member, required=True, description="The referrer.")
    influence = graphene.Float(required=True, description="PageRank in the referral graph (sums to 1 over members).")
    referrals = graphene.Int(required=True, description="Members this one referred directly.")
    reach = graphene.Int(description="Members referred directly or down the chain (network view only).")

    @staticmethod
    async def resolve_member(root: Any, info: ResolveInfo) -> Any:
        return await Member.fetch(info, root["member_id"])


class PartnerRecommendation(graphene.ObjectType):  # type: ignore[misc]
    """A partner a merchant should team up with: they share more members than chance would."""

    merchant = graphene.Field(Merchant, required=True, description="The recommended partner.")
    score = graphene.Float(required=True, description="Link-prediction score in [0, 1): higher is stronger.")
    shared_members = graphene.Int(required=True, description="Members who bought at both.")
    lift = graphene.Float(required=True, description="Shared members over the number expected by chance.")
    for_merchant = graphene.Field(Merchant, required=True, description="The merchant the recommendation is for.")
    expected_shared = graphene.Float(description="Members the two would share by chance: |A| x |B| / members.")
    shared_partners = graphene.Int(description="Partners both share more customers with than chance would.")
    reason = graphene.String(description="Why, in words and numbers (shared customers against expected, "
                                         "partners in common).")

    @staticmethod
    def resolve_expected_shared(root: Any, info: ResolveInfo) -> float | None:
        value = root.get("expected_shared")
        return None if value is None else float(value)

    @staticmethod
    def resolve_shared_partners(root: Any, info: ResolveInfo) -> int | None:
        value = root.get("shared_partners")
        return None if value is None else int(value)

    @staticmethod
    def resolve_reason(root: Any, info: ResolveInfo) -> str | None:
        value = root.get("reason")
        return None if value is None else str(value)

    @staticmethod
    async def resolve_merchant(root: Any, info: ResolveInfo) -> Any:
        return await Merchant.fetch(info, root["partner_id"])

    @staticmethod
    async def resolve_for_merchant(root: Any, info: ResolveInfo) -> Any:
        return await Merchant.fetch(info, root["merchant_id"])


class FraudAlert(graphene.ObjectType):  # type: ignore[misc]
    """A suspicious group found in the graphs (admins only)."""

    kind = graphene.String(required=True, description="SYBIL_FARM, SHARED_CONTACT or MERCHANT_COLLUSION.")
    members = graphene.List(graphene.NonNull(Member), required=True, description="The members involved.")
    merchants = graphene.List(graphene.NonNull(Merchant), required=True,
                              description="Merchants involved (collusion: where they earn, then redeem).")
    score = graphene.Float(required=True, description="How strongly the pattern holds, 0 to 1.")
    explanation = graphene.String(required=True, description="Why the group was flagged, in words.")

    @staticmethod
    async def resolve_members(root: Any, info: ResolveInfo) -> list[Any]:
        return await _members(info, root["member_ids"])

    @staticmethod
    async def resolve_merchants(root: Any, info: ResolveInfo) -> list[Any]:
        return await _merchants(info, root["merchant_ids"])


class SegmentCount(graphene.ObjectType):  # type: ignore[misc]
    """Members of one loyalty type: TRULY_LOYAL, ACCESSIBLE, TRAPPED or HIGH_RISK."""

    segment = graphene.String(required=True, description="TRULY_LOYAL, ACCESSIBLE, TRAPPED or HIGH_RISK.")
    members = graphene.Int(
        required=True,
        description="Members of this type at the merchant; in the network view, (member, merchant) pairs.",
    )
    rule = graphene.String(required=True, description="How a member falls into this segment.")
    suggested_action = graphene.String(required=True, description="What to do for these members.")

    @staticmethod
    def resolve_suggested_action(root: Any, info: ResolveInfo) -> str:
        return str(root["action"])


class MerchantCommunity(graphene.ObjectType):  # type: ignore[misc]
    """Merchants that share many customers (Louvain communities of the affinity graph)."""

    id = graphene.Int(required=True, description="Community number in this run (0 = largest).")
    merchants = graphene.List(graphene.NonNull(Merchant), required=True, description="Its merchants.")

    @staticmethod
    async def resolve_merchants(root: Any, info: ResolveInfo) -> list[Any]:
        return await _merchants(info, root["merchant_ids"])


class WinBackMember(graphene.ObjectType):  # type: ignore[misc]
    """A member of the merchant's who is drifting away, biggest spenders first."""

    member = graphene.Field(Member, required=True, description="The member.")
    segment = graphene.String(required=True, description="HIGH_RISK, or ACCESSIBLE and quiet for a while.")
    days_since_last_purchase = graphene.Int(required=True, description="Days since their last purchase here.")
    spent_minor = graphene.Field(BigInt, required=True, description="What they spent here, minor units.")

    @staticmethod
    async def resolve_member(root: Any, info: ResolveInfo) -> Any:
        return await Member.fetch(info, root["member_id"])

    @staticmethod
    def resolve_days_since_last_purchase(root: Any, info: ResolveInfo) -> int:
        return int(root["recency_s"]) // DAY_S

    @staticmethod
    def resolve_spent_minor(root: Any, info: ResolveInfo) -> int:
        return int(root["monetary_minor"])


class MemberRfm(graphene.ObjectType):  # type: ignore[misc]
    """A member's recency, frequency and monetary scores at the merchant (1 to 5, 5 best)."""

    member = graphene.Field(Member, required=True, description="The member.")
    recency_score = graphene.Int(required=True, description="1-5: 5 is the most recent fifth of the shop's members.")
    frequency_score = graphene.Int(required=True, description="1-5: 5 buys most often.")
    monetary_score = graphene.Int(required=True, description="1-5: 5 spends most.")
    days_since_last_purchase = graphene.Int(required=True, description="Days since their last purchase here.")
    purchases = graphene.Int(required=True, description="Purchases here.")
    spent_minor = graphene.Field(BigInt, required=True, description="What they spent here, minor units.")
    segment = graphene.String(required=True, description="Their loyalty type at this merchant.")


class NetworkInsights(graphene.ObjectType):  # type: ignore[misc]
    """What the network learned from its graphs, as of the last analysis run.

    An admin sees the network-wide view; a merchant sees its own members and network
    aggregates, never another merchant's customers.
    """

    scope = graphene.String(required=True, description="NETWORK (admin) or MERCHANT.")
    merchant = graphene.Field(Merchant, description="For a merchant's view: the merchant.")
    computed_at = graphene.DateTime(required=True, description="When the analysis that produced this finished.")
    age_seconds = graphene.Int(required=True, description="How old these results are, in seconds.")
    members = graphene.Int(required=True, description="Members in scope: all, or those who bought or enrolled here.")
    top_referrers = graphene.List(
        graphene.NonNull(ReferralInsight), required=True, first=graphene.Int(),
        description="Most influential referrers (a merchant: among its own members).",
    )
    partner_recommendations = graphene.List(
        graphene.NonNull(PartnerRecommendation), required=True, first=graphene.Int(),
        description="Partners to team up with (admin: the strongest pairs in the network).",
    )
    fraud_alerts = graphene.List(
        graphene.NonNull(FraudAlert), required=True, first=graphene.Int(),
        description="Suspicious groups with explanations. Admins only: FORBIDDEN for a merchant.",
    )
    segments = graphene.List(graphene.NonNull(SegmentCount), required=True,
                             description="Members per loyalty type, with the rule and a suggested action.")
    communities = graphene.List(graphene.NonNull(MerchantCommunity), required=True,
                                description="Merchant communities (a merchant: its own).")
    win_back = graphene.List(
        graphene.NonNull(WinBackMember), required=True, first=graphene.Int(),
        description="The merchant's members worth winning back (empty in the network view).",
    )
    member_rfm = graphene.Field(
        MemberRfm, loyalty_id=graphene.String(required=True),
        description="A member's RFM at the merchant; null when they never bought there (or in the network view).",
    )
    network_map_url = graphene.String(description="Where the network map is served (admin only; null otherwise).")

    @staticmethod
    def _payload(root: InsightsView) -> dict[str, Any]:
        return root.stored.payload

    @staticmethod
    def resolve_scope(root: InsightsView, info: ResolveInfo) -> str:
        return "NETWORK" if root.merchant_id is None else "MERCHANT"

    @staticmethod
    async def resolve_merchant(root: InsightsView, info: ResolveInfo) -> Any:
        return None if root.merchant_id is None else await Merchant.fetch(info, root.merchant_id)

    @staticmethod
    def resolve_computed_at(root: InsightsView, info: ResolveInfo) -> Any:
        return root.stored.computed_at

    @staticmethod
    def resolve_age_seconds(root: InsightsView, info: ResolveInfo) -> int:
        return int(root.stored.age_s())

    @staticmethod
    def resolve_members(root: InsightsView, info: ResolveInfo) -> int:
        return int(root.stored.payload.get("members", 0))

    @staticmethod
    async def resolve_top_referrers(root: InsightsView, info: ResolveInfo, first: int | None = None) -> list[Any]:
        return await _visible_rows(info, root.stored.payload.get("top_referrers", []), page_size(first))

    @staticmethod
    def resolve_partner_recommendations(root: InsightsView, info: ResolveInfo, first: int | None = None) -> list[Any]:
        return list(root.stored.payload.get("recommendations", []))[:page_size(first)]

    @staticmethod
    async def resolve_fraud_alerts(root: InsightsView, info: ResolveInfo, first: int | None = None) -> list[Any]:
        # async although it awaits nothing: a sync resolver's FORBIDDEN on this non-null field
        # would null the object before its async siblings were awaited (graphql-core leaves
        # their coroutines un-awaited); raised inside the gather, they finish first.
        info.context.require_admin()
        return list(root.stored.payload.get("fraud_alerts", []))[:page_size(first)]

    @staticmethod
    def resolve_segments(root: InsightsView, info: ResolveInfo) -> list[Any]:
        return list(root.stored.payload.get("segments", []))

    @staticmethod
    def resolve_communities(root: InsightsView, info: ResolveInfo) -> list[Any]:
        return list(root.stored.payload.get("communities", []))

    @staticmethod
    async def resolve_win_back(root: InsightsView, info: ResolveInfo, first: int | None = None) -> list[Any]:
        return await _visible_rows(info, root.stored.payload.get("win_back", []), page_size(first))

    @staticmethod
    async def resolve_member_rfm(root: InsightsView, info: ResolveInfo, loyalty_id: str) -> Any:
        if root.merchant_id is None:
            return None
        try:
            member = await find_member(info.context.db, loyalty_id)
        except DomainError as error:
            if error.code == "MEMBER_NOT_FOUND":
                return None
            raise CodedError(error.message, code=error.code) from None
        row = await info.context.insights.member_rfm(root.merchant_id, member.id)
        if row is None:
            return None
        r, f, m, recency_s, purchases, spent, segment = row
        return MemberRfm(member=member, recency_score=r, frequency_score=f, monetary_score=m,
                         days_since_last_purchase=recency_s // DAY_S, purchases=purchases, spent_minor=spent,
                         segment=segment)

    @staticmethod
    def resolve_network_map_url(root: InsightsView, info: ResolveInfo) -> str | None:
        return "/admin/network-map.svg" if root.is_admin else None
