"""Campaigns in the API: a merchant creates and reads its own; an admin reads all."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.db import utcnow
from coalition.graphql.access import campaign_scope, may_see_campaign
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.scalars import BigInt
from coalition.graphql.core.types import Node, UserError, connection, connection_types, decode_cursor, page_size
from coalition.graphql.dataloaders import MerchantByIdLoader
from coalition.programs.campaign_models import Campaign as CampaignModel
from coalition.programs.campaign_snapshots import latest_result
from coalition.programs.campaigns import campaign_by_id, create_campaign, list_campaigns


class CampaignKind(graphene.Enum):  # type: ignore[misc]
    """What a campaign offers on each purchase of a treated member at the merchant."""

    MULTIPLIER = "MULTIPLIER"
    BONUS = "BONUS"


class CampaignResult(graphene.ObjectType):  # type: ignore[misc]
    """Treated vs held-out members over the campaign's period up to asOf; a visit is a purchase (an earn).

    Stored and recomputed every few minutes by the worker (COALITION_CAMPAIGN_RESULTS_INTERVAL_S), not counted per
    request.
    """

    as_of = graphene.DateTime(required=True, description=(
        "The ledger is counted up to this moment (the figures are recomputed every few minutes)."))
    final = graphene.Boolean(required=True, description=(
        "Settled: 30 days after the campaign's end refunds no longer change it, and it is not recomputed."))

    treated_members = graphene.Int(required=True, description="Members who got the offer.")
    control_members = graphene.Int(required=True, description="Members held out at random.")
    treated_spend_minor = BigInt(required=True, description="What treated members spent at the merchant.")
    control_spend_minor = BigInt(required=True, description="What held-out members spent at the merchant.")
    lift_percent = graphene.Float(description=(
        "How much more a treated member spent on average than a held-out one, in percent; null until both groups "
        "have the minimum size (COALITION_CAMPAIGN_MIN_GROUP_SIZE) or when the control group spent nothing."))
    p_value = graphene.Float(description=(
        "Welch's two-sided t-test of the spend per member; null below the minimum group size or when neither "
        "group varies."))
    treated_visits = graphene.Int(required=True, description="Treated members' purchases at the merchant.")
    control_visits = graphene.Int(required=True, description="Held-out members' purchases at the merchant.")
    visits_lift_percent = graphene.Float(description="Lift in purchases per member at the merchant.")
    visits_p_value = graphene.Float(description="Welch's p-value of the purchases per member.")
    treated_partner_visits = graphene.Int(required=True, description="Treated members' purchases at other partners.")
    control_partner_visits = graphene.Int(required=True, description="Held-out members' purchases at other partners.")
    partner_visits_lift_percent = graphene.Float(description=(
        "Cross-partner lift: how many more purchases per member at the merchant's partners, in percent."))
    partner_visits_p_value = graphene.Float(description="Welch's p-value of the purchases per member at partners.")
    bonus_points = BigInt(required=True, description="Points the offer added to treated members' earns (its cost).")


class Campaign(graphene.ObjectType):  # type: ignore[misc]
    """A merchant's offer to a segment of its members for a period, with a random control group held out."""

    class Meta:
        interfaces = (Node,)
        possible_types = (CampaignModel,)

    merchant = graphene.Field("coalition.graphql.partners.types.Merchant", required=True,
                              description="The merchant that runs (and funds) it.")
    name = graphene.String(required=True, description="The merchant's name for it.")
    kind = graphene.Field(CampaignKind, required=True, description="MULTIPLIER or BONUS.")
    multiplier_percent = graphene.Int(description="MULTIPLIER: 200 doubles the points of each purchase.")
    bonus_points = graphene.Int(description="BONUS: points added to each purchase.")
    segment = graphene.String(description="TRULY_LOYAL, ACCESSIBLE, TRAPPED or HIGH_RISK; null: every member.")
    control_percent = graphene.Int(required=True, description="Share of the audience held out at random.")
    starts_at = graphene.DateTime(required=True, description="When it starts (at or before now: it runs at once).")
    ends_at = graphene.DateTime(required=True, description="When it ends.")
    result = graphene.Field(CampaignResult, required=True, description="Treated vs control, and the lift.")

    @staticmethod
    async def fetch(info: ResolveInfo, campaign_id: int) -> Any:
        info.context.require_caller()
        campaign = await campaign_by_id(info.context.db, campaign_id)
        if campaign is None or not may_see_campaign(info, campaign.merchant_id):
            return None
        return campaign

    @staticmethod
    async def resolve_merchant(root: Any, info: ResolveInfo) -> Any:
        return await info.context.loader(MerchantByIdLoader).load(root.merchant_id)

    @staticmethod
    async def resolve_result(root: Any, info: ResolveInfo) -> CampaignResult:
        services = info.context.services
        stored = await latest_result(services.db, root, utcnow(), services.settings.campaign_min_group_size,
                                     services.settings.campaign_results_interval_s)
        r = stored.result
        return CampaignResult(
            as_of=stored.as_of, final=stored.final,
            treated_members=r.treated_members, control_members=r.control_members,
            treated_spend_minor=r.treated_spend_minor, control_spend_minor=r.control_spend_minor,
            lift_percent=r.spend.percent, p_value=r.spend.p_value,
            treated_visits=r.treated_visits, control_visits=r.control_visits,
            visits_lift_percent=r.visits.percent, visits_p_value=r.visits.p_value,
            treated_partner_visits=r.treated_partner_visits, control_partner_visits=r.control_partner_visits,
            partner_visits_lift_percent=r.partner_visits.percent, partner_visits_p_value=r.partner_visits.p_value,
            bonus_points=r.bonus_points)


CampaignEdge, CampaignConnection = connection_types(
    Campaign, name="Campaign", noun="campaign", nouns="campaigns", order="newest first")


class CreateCampaignInput(graphene.InputObjectType):  # type: ignore[misc]
    name = graphene.String(required=True, description="1 to 100 characters.")
    kind = CampaignKind(required=True, description="MULTIPLIER or BONUS.")
    multiplier_percent = graphene.Int(description="MULTIPLIER only: 101 to 1000 (200 doubles the points).")
    bonus_points = graphene.Int(description="BONUS only: 1 to 100,000 points added to each purchase.")
    segment = graphene.String(description="TRULY_LOYAL, ACCESSIBLE, TRAPPED or HIGH_RISK (from the stored "
                                          "analysis); null: every member of yours.")
    control_percent = graphene.Int(required=True, description="0 to 90: share of the audience held out at random.")
    starts_at = graphene.DateTime(required=True, description="At or before now: the campaign runs at once.")
    ends_at = graphene.DateTime(required=True, description="After startsAt; at most 366 days later.")
    idempotency_key = graphene.String(required=True, description="Same key and input: the same campaign.")


class CampaignPayload(graphene.ObjectType):  # type: ignore[misc]
    """The campaign created (or found, on a retry)."""

    campaign = graphene.Field(Campaign, description="The campaign.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class CreateCampaign(BaseMutation, access=Access.MERCHANT, input_type=CreateCampaignInput, output=CampaignPayload):
    """Offer a multiplier or bonus to a segment of your members for a period, holding out a control group."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        services = info.context.services
        kind = input.kind.value if hasattr(input.kind, "value") else input.kind
        campaign = await create_campaign(
            services.db, services.keys, info.context.insights, merchant_id=info.context.merchant_id, name=input.name,
            kind=kind, multiplier_percent=input.multiplier_percent, bonus_points=input.bonus_points,
            segment=input.segment, control_percent=input.control_percent, starts_at=input.starts_at,
            ends_at=input.ends_at, idempotency_key=input.idempotency_key, now=utcnow())
        return {"campaign": campaign}


class CampaignQueries(graphene.ObjectType):  # type: ignore[misc]
    campaigns = graphene.Field(CampaignConnection, required=True, first=graphene.Int(), after=graphene.String(),
                               description="Campaigns, newest first: a merchant its own, an admin every one.")

    @staticmethod
    async def resolve_campaigns(root: Any, info: ResolveInfo, first: int | None = None,
                                after: str | None = None) -> Any:
        merchant_id = campaign_scope(info)
        size = page_size(first)
        rows = await list_campaigns(info.context.db, merchant_id=merchant_id, before_id=decode_cursor(info, after),
                                    limit=size + 1)
        return connection(info, CampaignEdge, CampaignConnection, rows, size)


class CampaignMutations(graphene.ObjectType):  # type: ignore[misc]
    create_campaign = CreateCampaign.Field(required=True, description="Start a campaign with a control group "
                                                                      "(merchant).")
