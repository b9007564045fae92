"""The one mutation base: every mutation is on it, declares who may call it, and the base maps
domain errors to ``userErrors`` and refusals to GraphQL errors, the same way for all."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as Input
from typing import Any, cast

import graphene
import pytest

from coalition.auth.models import Role
from coalition.auth.service import Caller
from coalition.errors import DomainError
from coalition.graphql.context import Context, ResolveInfo, Services
from coalition.graphql.core.mutations import NATURALLY_IDEMPOTENT, Access, BaseMutation
from coalition.graphql.core.types import UserError
from coalition.graphql.errors import Forbidden, Unauthenticated
from coalition.graphql.schema import schema

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_ACCESS = {
    "onboardMerchant": Access.ADMIN, "suspendMerchant": Access.ADMIN, "reactivateMerchant": Access.ADMIN,
    "enrollMember": Access.MERCHANT, "claimMemberAccess": Access.ANONYMOUS_OR_MEMBER,
    "rotateMemberToken": Access.MEMBER, "revokeMemberTokens": Access.MEMBER_OR_ADMIN,
    "issueMemberClaimCode": Access.ADMIN, "disputeTransaction": Access.MEMBER, "resolveDispute": Access.ADMIN,
    "earnPoints": Access.MERCHANT, "redeemPoints": Access.MERCHANT, "authorizeRedemption": Access.MERCHANT,
    "captureRedemption": Access.MERCHANT, "voidRedemption": Access.MERCHANT,
    "reverseTransaction": Access.MERCHANT, "reconcilePosExport": Access.STAFF,
    "issueGiftCard": Access.MERCHANT, "redeemGiftCard": Access.MERCHANT, "authorizeGiftCard": Access.MERCHANT,
    "captureGiftCard": Access.MERCHANT, "voidGiftCard": Access.MERCHANT, "refundGiftCard": Access.MERCHANT,
    "attachGiftCard": Access.MEMBER,
    "createCampaign": Access.MERCHANT, "setTierPolicy": Access.ADMIN,
    "createReward": Access.MERCHANT, "claimReward": Access.MERCHANT_OR_MEMBER, "useVoucher": Access.MERCHANT,
    "createStampCard": Access.MERCHANT, "createQuest": Access.ADMIN,
    "runSettlement": Access.ADMIN, "setNetworkPolicy": Access.ADMIN, "reviewFraudAlert": Access.ADMIN,
    "createWebhookEndpoint": Access.STAFF, "deleteWebhookEndpoint": Access.STAFF,
    "replayWebhookDelivery": Access.STAFF,
}


def test_every_mutation_is_on_the_base_and_declares_who_may_call_it() -> None:
    fields = schema.graphql_schema.mutation_type.fields
    declared = {}
    for name, field in fields.items():
        mutation = getattr(field.resolve, "__self__", None)
        assert isinstance(mutation, type) and issubclass(mutation, BaseMutation), name
        declared[name] = mutation.access
    assert declared == EXPECTED_ACCESS


def test_every_mutation_takes_an_idempotency_key_or_is_listed_as_naturally_idempotent() -> None:
    """A write whose retry would make a second thing takes ``idempotencyKey``; the others are listed in one
    place (``NATURALLY_IDEMPOTENT``) with the reason a retry leaves nothing more behind."""
    fields = schema.graphql_schema.mutation_type.fields
    keyed, unkeyed = set(), set()
    for name, field in fields.items():
        input_type = getattr(field.args["input"].type, "of_type", field.args["input"].type)
        (keyed if "idempotencyKey" in input_type.fields else unkeyed).add(name)
    assert unkeyed == set(NATURALLY_IDEMPOTENT), (
        f"without idempotencyKey and not listed: {sorted(unkeyed - set(NATURALLY_IDEMPOTENT))}; "
        f"listed but taking a key (or gone): {sorted(set(NATURALLY_IDEMPOTENT) - unkeyed)}")
    assert all(len(reason) > 20 for reason in NATURALLY_IDEMPOTENT.values())
    assert {"onboardMerchant", "setNetworkPolicy", "earnPoints", "enrollMember"} <= keyed


def test_a_mutation_without_access_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="must declare who may call it"):
        class Undeclared(BaseMutation, input_type=ProbeInput, output=ProbePayload):
            """Never built."""


def test_no_resolver_takes_an_untyped_info() -> None:
    untyped = [f"{path.relative_to(ROOT)}:{number}" for path in sorted((ROOT / "coalition").rglob("*.py"))
               for number, line in enumerate(path.read_text().splitlines(), 1) if "info: Any" in line]
    assert untyped == []


class ProbeInput(graphene.InputObjectType):  # type: ignore[misc]
    fail = graphene.Boolean(required=True)


class ProbePayload(graphene.ObjectType):  # type: ignore[misc]
    done = graphene.Boolean()
    user_errors = graphene.List(graphene.NonNull(UserError), required=True)


class Probe(BaseMutation, access=Access.MERCHANT, input_type=ProbeInput, output=ProbePayload):
    """Raises a domain error when asked to; else succeeds."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        if input.fail:
            raise DomainError("told to fail", code="TOLD_TO_FAIL", field="fail")
        return {"done": info.context.merchant_id == 7}


class Claim(BaseMutation, access=Access.ANONYMOUS_OR_MEMBER, input_type=ProbeInput, output=ProbePayload,
            refusal="send it without an API key, please"):
    """Open to strangers and members only."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        return {"done": True}


class Info:
    def __init__(self, caller: Caller | None) -> None:
        # The probes read only the caller: no services needed.
        self.context = Context(services=cast(Services, None), caller=caller)


MERCHANT = Caller(role=Role.MERCHANT, merchant_id=7)
MEMBER = Caller(role=Role.MEMBER, member_id=3)
ADMIN = Caller(role=Role.ADMIN)


async def test_the_base_maps_domain_errors_to_user_errors_and_passes_the_rest() -> None:
    done = await Probe.mutate(None, Info(MERCHANT), Input(fail=False))
    assert done.done is True and done.user_errors == []
    failed = await Probe.mutate(None, Info(MERCHANT), Input(fail=True))
    assert failed.done is None
    assert [(e.code, e.field, e.message) for e in failed.user_errors] == [("TOLD_TO_FAIL", ["input", "fail"],
                                                                         "told to fail")]


@pytest.mark.parametrize(("caller", "error"), [(None, Unauthenticated), (MEMBER, Forbidden), (ADMIN, Forbidden)])
async def test_the_base_refuses_other_callers_before_perform(caller: Caller | None, error: type) -> None:
    with pytest.raises(error):
        await Probe.mutate(None, Info(caller), Input(fail=True))


async def test_a_declared_refusal_is_the_forbidden_message() -> None:
    assert (await Claim.mutate(None, Info(None), Input(fail=False))).done is True
    assert (await Claim.mutate(None, Info(MEMBER), Input(fail=False))).done is True
    with pytest.raises(Forbidden, match="send it without an API key, please"):
        await Claim.mutate(None, Info(MERCHANT), Input(fail=False))
