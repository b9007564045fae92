"""Status tiers in the API: the tier policy (anyone may read it, an admin sets it) and Member.tierStatus."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.db import utcnow
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import UserError
from coalition.graphql.ledger.mutations import idempotency_key_field
from coalition.programs.tier_review import current_tier_policy, set_tier_policy, tier_state
from coalition.programs.tiers import Tier, TierPolicy


class TierStatus(graphene.ObjectType):  # type: ignore[misc]
    """A member's status tier under the network's tier policy."""

    name = graphene.String(required=True, description="The tier, e.g. BASIC, SILVER, GOLD.")
    qualifying_points = graphene.Int(required=True, description=(
        "Points earned in the qualifying window (not the balance), less earns reversed since."))
    next_tier = graphene.String(description="The tier above, if any.")
    points_to_next_tier = graphene.Int(description="Qualifying points still missing for the tier above.")
    valid_until = graphene.DateTime(description=(
        "When the current tier is next reviewed; below its threshold then, the member keeps it for the "
        "policy's grace days and then moves down."))
    since = graphene.DateTime(description="Since when the member holds this tier.")


def tier_status_of(policy: TierPolicy, state: Any) -> TierStatus:
    above = policy.above(state.tier)
    return TierStatus(name=state.tier, qualifying_points=state.qualifying_points,
                      next_tier=above.name if above else None,
                      points_to_next_tier=max(0, above.threshold_points - state.qualifying_points) if above else None,
                      valid_until=state.valid_until, since=state.since)


async def resolve_tier_status(member_id: int, info: ResolveInfo) -> TierStatus:
    policy, state = await tier_state(info.context.db, member_id, utcnow())
    return tier_status_of(policy, state)


class TierLevel(graphene.ObjectType):  # type: ignore[misc]
    """One tier of the ladder."""

    name = graphene.String(required=True, description="The tier's name.")
    threshold_points = graphene.Int(required=True, description="Qualifying points that reach it.")
    multiplier_percent = graphene.Int(required=True, description="Earn multiplier: 150 means 1.5x the base points.")


class TierPolicyType(graphene.ObjectType):  # type: ignore[misc]
    """The network's status tiers (admin-set; anyone may read them)."""

    class Meta:
        name = "TierPolicy"

    tiers = graphene.List(graphene.NonNull(TierLevel), required=True, description="The ladder, lowest first.")
    window = graphene.String(required=True, description="ROLLING (the last windowMonths months) or CALENDAR_YEAR.")
    window_months = graphene.Int(required=True, description="The rolling window's length in months.")
    grace_days = graphene.Int(required=True, description="Days a member keeps a tier after its review date.")
    bonus_funder = graphene.String(required=True, description=(
        "Who issues (and pays for) the multiplier's extra points: MERCHANT (the earning one) or NETWORK."))
    created_at = graphene.DateTime(description="When this version was set; null for the default.")

    @staticmethod
    def resolve_tiers(root: TierPolicy, info: ResolveInfo) -> list[Tier]:
        return list(root.tiers)


class TierLevelInput(graphene.InputObjectType):  # type: ignore[misc]
    name = graphene.String(required=True, description="Capital letters, digits or _, e.g. GOLD.")
    threshold_points = graphene.Int(required=True, description="Qualifying points that reach it (0 for the first).")
    multiplier_percent = graphene.Int(description="Earn multiplier in percent, 100 to 1000 (default 100).")


class SetTierPolicyInput(graphene.InputObjectType):  # type: ignore[misc]
    tiers = graphene.List(graphene.NonNull(TierLevelInput), required=True,
                          description="1 to 10 tiers, lowest first, thresholds rising from 0.")
    window = graphene.String(description="ROLLING (default) or CALENDAR_YEAR.")
    window_months = graphene.Int(description="Rolling window in months, 1 to 36 (default 12).")
    grace_days = graphene.Int(description="0 to 366 (default 90).")
    bonus_funder = graphene.String(description="MERCHANT (default) or NETWORK.")
    idempotency_key = idempotency_key_field()


class SetTierPolicyPayload(graphene.ObjectType):  # type: ignore[misc]
    """The tier policy now in force; every member was reviewed under it."""

    policy = graphene.Field(TierPolicyType, description="The version written (a retry: the one written under its key).")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class SetTierPolicy(BaseMutation, access=Access.ADMIN, input_type=SetTierPolicyInput, output=SetTierPolicyPayload):
    """Set the network's status tiers and review every member under them (admin), once per idempotency key.
    No entry is rewritten."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        tiers = [{"name": t.name, "threshold_points": t.threshold_points, "multiplier_percent": t.multiplier_percent}
                 for t in input.tiers]
        policy = await set_tier_policy(
            info.context.db, tiers=tiers, window=input.window, window_months=input.window_months,
            grace_days=input.grace_days, bonus_funder=input.bonus_funder, idempotency_key=input.idempotency_key)
        return {"policy": policy}


class TierQueries(graphene.ObjectType):  # type: ignore[misc]
    tier_policy = graphene.Field(TierPolicyType, required=True, description="The network's status tiers.")

    @staticmethod
    async def resolve_tier_policy(root: Any, info: ResolveInfo) -> TierPolicy:
        return await current_tier_policy(info.context.db)


class TierMutations(graphene.ObjectType):  # type: ignore[misc]
    set_tier_policy = SetTierPolicy.Field(required=True, description="Set the status tiers (admin).")
