"""Admin mutations on merchants."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.core.mutations import payload_of
from coalition.graphql.core.types import UserError, decode_input_id
from coalition.graphql.partners.types import Merchant
from coalition.partners.models import MerchantStatus
from coalition.partners.service import onboard_merchant, set_merchant_status


class OnboardMerchantInput(graphene.InputObjectType):  # type: ignore[misc]
    name = graphene.String(required=True, description="The shop's name (1 to 120 characters).")
    category = graphene.String(description="What kind of shop it is (at most 60 characters).")
    earn_rate_points_per_unit = graphene.Int(description="Points per whole currency unit spent, 0 to 1000 (default 1).")


class OnboardMerchantPayload(graphene.ObjectType):  # type: ignore[misc]
    """The new merchant and its API key."""

    merchant = graphene.Field(Merchant, description="The merchant, ACTIVE.")
    api_key = graphene.String(description="The merchant's API key: shown this once, stored hashed.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class OnboardMerchant(graphene.Mutation):  # type: ignore[misc]
    """Add a partner shop to the network (admin)."""

    class Arguments:
        input = OnboardMerchantInput(required=True)

    Output = OnboardMerchantPayload

    @staticmethod
    async def mutate(root: Any, info: Any, input: Any) -> Any:
        info.context.require_admin()

        async def call() -> dict[str, Any]:
            onboarding = await onboard_merchant(info.context.db, name=input.name, category=input.category,
                                                earn_rate_points_per_unit=input.earn_rate_points_per_unit)
            return {"merchant": onboarding.merchant, "api_key": onboarding.api_key}

        return await payload_of(OnboardMerchantPayload, call)


class SuspendMerchantInput(graphene.InputObjectType):  # type: ignore[misc]
    merchant_id = graphene.ID(required=True, description="The merchant's global ID.")


class ReactivateMerchantInput(graphene.InputObjectType):  # type: ignore[misc]
    merchant_id = graphene.ID(required=True, description="The merchant's global ID.")


class SuspendMerchantPayload(graphene.ObjectType):  # type: ignore[misc]
    """The merchant after the change."""

    merchant = graphene.Field(Merchant, description="The merchant.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


def status_mutation(name: str, input_type: type, status: MerchantStatus, description: str) -> Any:
    async def mutate(root: Any, info: Any, input: Any) -> Any:
        info.context.require_admin()

        async def call() -> dict[str, Any]:
            merchant_id = decode_input_id(info, input.merchant_id, "Merchant", "merchantId")
            return {"merchant": await set_merchant_status(info.context.db, merchant_id, status)}

        return await payload_of(SuspendMerchantPayload, call)

    arguments = type("Arguments", (), {"input": input_type(required=True)})
    return type(name, (graphene.Mutation,), {"__doc__": description, "Arguments": arguments,
                                             "Output": SuspendMerchantPayload, "mutate": staticmethod(mutate)})


SuspendMerchant = status_mutation(
    "SuspendMerchant", SuspendMerchantInput, MerchantStatus.SUSPENDED,
    "Stop a merchant writing to the ledger (admin); its key still reads. Suspending twice changes nothing.",
)
ReactivateMerchant = status_mutation(
    "ReactivateMerchant", ReactivateMerchantInput, MerchantStatus.ACTIVE, "Let a suspended merchant write again."
)


class PartnerMutations(graphene.ObjectType):  # type: ignore[misc]
    onboard_merchant = OnboardMerchant.Field(required=True, description="Add a partner shop (admin).")
    suspend_merchant = SuspendMerchant.Field(required=True, description="Suspend a partner shop (admin).")
    reactivate_merchant = ReactivateMerchant.Field(
        required=True, description="Reactivate a suspended partner shop (admin)."
    )
