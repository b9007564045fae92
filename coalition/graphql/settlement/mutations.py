"""Settlement mutations (admin): run a settlement, set the network policy."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import UserError
from coalition.graphql.ledger.mutations import optional_idempotency_key_field
from coalition.graphql.settlement.types import NetworkPolicy, SettlementBatch
from coalition.settlement.policy import set_policy
from coalition.settlement.service import run_settlement


class RunSettlementInput(graphene.InputObjectType):  # type: ignore[misc]
    period_end = graphene.DateTime(required=True, description="Settle every unsettled entry created before this.")
    idempotency_key = graphene.String(required=True, description="Same key, same periodEnd: the same batch.")


class RunSettlementPayload(graphene.ObjectType):  # type: ignore[misc]
    """The closed batch."""

    batch = graphene.Field(SettlementBatch, description="The batch (the earlier one on a retry).")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class RunSettlement(BaseMutation, access=Access.ADMIN, input_type=RunSettlementInput, output=RunSettlementPayload):
    """Close all unsettled activity up to periodEnd into one signed batch (admin)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        services = info.context.services
        result = await run_settlement(services.db, services.settings, services.keys,
                                      period_end=input.period_end, idempotency_key=input.idempotency_key)
        return {"batch": result.batch}


class SetNetworkPolicyInput(graphene.InputObjectType):  # type: ignore[misc]
    point_value_minor = graphene.Int(description="Money (minor units) per point, 0 to 1,000,000.")
    funding_model = graphene.String(description="ISSUANCE or REDEMPTION.")
    reimbursement_rate = graphene.String(description="Decimal 0..1, e.g. \"0.90\".")
    breakage_share = graphene.String(description="Decimal 0..1: share of expired points' funding back to the issuer.")
    period = graphene.String(description="DAILY, WEEKLY or MONTHLY.")
    timezone = graphene.String(description="IANA time zone, e.g. Europe/Paris.")
    redeem_without_proof_points = graphene.Int(description=(
        "Points one merchant may redeem or hold from one member in 24 hours without the member's proof of "
        "presence (memberProof); 0 asks for it on every redemption."))
    effective_from = graphene.DateTime(description="When the new version applies (default: now; not in the past "
                                                   "of a settled period).")
    idempotency_key = optional_idempotency_key_field("the version written under it")


class SetNetworkPolicyPayload(graphene.ObjectType):  # type: ignore[misc]
    """The new policy version."""

    policy = graphene.Field(NetworkPolicy, description="The version written.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class SetNetworkPolicy(BaseMutation, access=Access.ADMIN, input_type=SetNetworkPolicyInput,
                       output=SetNetworkPolicyPayload):
    """Append a policy version; omitted fields keep their current values (admin)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        services = info.context.services
        policy = await set_policy(
            services.db, services.settings, point_value_minor=input.point_value_minor,
            funding_model=input.funding_model, reimbursement_rate=input.reimbursement_rate,
            breakage_share=input.breakage_share, period=input.period, timezone=input.timezone,
            redeem_without_proof_points=input.redeem_without_proof_points, effective_from=input.effective_from,
            idempotency_key=input.idempotency_key)
        return {"policy": policy}


class SettlementMutations(graphene.ObjectType):  # type: ignore[misc]
    run_settlement = RunSettlement.Field(required=True, description="Close a settlement period (admin).")
    set_network_policy = SetNetworkPolicy.Field(required=True, description="Set the network policy (admin).")
