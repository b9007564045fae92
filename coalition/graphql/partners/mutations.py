"""Admin mutations on merchants."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import UserError, decode_input_id
from coalition.graphql.ledger.mutations import optional_idempotency_key_field
from coalition.graphql.partners.types import Merchant
from coalition.partners.models import MerchantStatus
from coalition.partners.service import onboard_merchant, set_merchant_status


class OnboardMerchantInput(graphene.InputObjectType):  # type: ignore[misc]
    name = graphene.String(required=True, description="The shop's name (1 to 120 characters).")
    category = graphene.String(description="What kind of shop it is (at most 60 characters).")
    earn_rate_points_per_unit = graphene.Int(description="Points per whole currency unit spent, 0 to 1000 (default 1).")
    idempotency_key = optional_idempotency_key_field("the same merchant (and apiKey null: it was shown once)")


class OnboardMerchantPayload(graphene.ObjectType):  # type: ignore[misc]
    """The new merchant and its API key."""

    merchant = graphene.Field(Merchant, description="The merchant, ACTIVE.")
    api_key = graphene.String(description="The merchant's API key: shown this once, stored hashed (null on a "
                                          "retry under the idempotency key).")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class OnboardMerchant(BaseMutation, access=Access.ADMIN, input_type=OnboardMerchantInput,
                      output=OnboardMerchantPayload):
    """Add a partner shop to the network (admin)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        onboarding = await onboard_merchant(info.context.db, name=input.name, category=input.category,
                                            earn_rate_points_per_unit=input.earn_rate_points_per_unit,
                                            idempotency_key=input.idempotency_key)
        return {"merchant": onboarding.merchant, "api_key": onboarding.api_key}


class SuspendMerchantInput(graphene.InputObjectType):  # type: ignore[misc]
    merchant_id = graphene.ID(required=True, description="The merchant's global ID.")


class ReactivateMerchantInput(graphene.InputObjectType):  # type: ignore[misc]
    merchant_id = graphene.ID(required=True, description="The merchant's global ID.")


class SuspendMerchantPayload(graphene.ObjectType):  # type: ignore[misc]
    """The merchant after the change."""

    merchant = graphene.Field(Merchant, description="The merchant.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class SetMerchantStatus(BaseMutation):
    """Move a merchant to ``status`` (admin); setting the status it has changes nothing."""

    class Meta:
        abstract = True

    access = Access.ADMIN
    Output = SuspendMerchantPayload
    status: MerchantStatus

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        merchant_id = decode_input_id(info, input.merchant_id, "Merchant", "merchantId")
        return {"merchant": await set_merchant_status(info.context.db, merchant_id, cls.status)}


class SuspendMerchant(SetMerchantStatus, input_type=SuspendMerchantInput):
    """Stop a merchant writing to the ledger (admin); its key still reads. Suspending twice changes nothing."""

    status = MerchantStatus.SUSPENDED


class ReactivateMerchant(SetMerchantStatus, input_type=ReactivateMerchantInput):
    """Let a suspended merchant write again."""

    status = MerchantStatus.ACTIVE


class PartnerMutations(graphene.ObjectType):  # type: ignore[misc]
    onboard_merchant = OnboardMerchant.Field(required=True, description="Add a partner shop (admin).")
    suspend_merchant = SuspendMerchant.Field(required=True, description="Suspend a partner shop (admin).")
    reactivate_merchant = ReactivateMerchant.Field(
        required=True, description="Reactivate a suspended partner shop (admin)."
    )
