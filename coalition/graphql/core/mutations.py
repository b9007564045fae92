"""The one way to write a mutation: :class:`BaseMutation` (after Saleor's ``BaseMutation``).

A mutation declares who may call it (``access``) and implements one ``perform``, which
decodes the input's IDs and calls one service function. The base does the rest, the same
way for every mutation:

1. checks the caller against ``access`` before anything runs: a caller without credentials
   gets a GraphQL error UNAUTHENTICATED, a caller of another kind FORBIDDEN, and the payload
   is null (``tests/graphql/test_tenant_matrix.py`` checks this for every mutation and role);
2. runs ``perform``; a :class:`~coalition.errors.DomainError` it raises becomes the payload's
   ``userErrors`` (and nothing else), any other error goes to the client as it is.

Example::

    class SuspendMerchant(BaseMutation, access=Access.ADMIN, input_type=SuspendMerchantInput,
                          output=SuspendMerchantPayload):
        \"\"\"Stop a merchant writing to the ledger (admin).\"\"\"

        @classmethod
        async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
            merchant_id = decode_input_id(info, input.merchant_id, "Merchant", "merchantId")
            return {"merchant": await set_merchant_status(info.context.db, merchant_id, SUSPENDED)}
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, ClassVar

import graphene

from coalition.auth.models import Role
from coalition.errors import DomainError
from coalition.graphql.context import Context, ResolveInfo
from coalition.graphql.core.types import user_errors
from coalition.graphql.errors import Forbidden


class Access(enum.Enum):
    """Who may call a mutation. Checked by :meth:`BaseMutation.mutate` before ``perform`` runs."""

    ADMIN = "an admin key"
    MERCHANT = "a merchant API key"
    MEMBER = "the member's own token"
    STAFF = "an admin or a merchant key (not a member token)"
    MEMBER_OR_ADMIN = "the member's own token or an admin key"
    ANONYMOUS_OR_MEMBER = "no key (the customer), or the member's own token"
    MERCHANT_OR_MEMBER = "a merchant API key (at the till) or the member's own token (the wallet)"

    def admit(self, context: Context, refusal: str | None = None) -> None:
        """Raise Unauthenticated or Forbidden unless the request's caller is of this kind.

        ``refusal`` replaces the FORBIDDEN message where a mutation says better why."""
        if self is Access.ANONYMOUS_OR_MEMBER:
            if context.caller is not None and context.caller.role != Role.MEMBER:
                raise Forbidden(refusal or "send this without an API key")
            return
        try:
            if self is Access.ADMIN:
                context.require_admin()
            elif self is Access.MERCHANT:
                context.require_merchant()
            elif self is Access.MEMBER:
                context.require_member()
            elif self is Access.STAFF:
                context.require_staff()
            elif self is Access.MERCHANT_OR_MEMBER:
                if context.require_caller().role not in (Role.MERCHANT, Role.MEMBER):
                    raise Forbidden(f"this operation needs {self.value}")
            elif context.require_caller().role not in (Role.MEMBER, Role.ADMIN):  # MEMBER_OR_ADMIN
                raise Forbidden(f"this operation needs {self.value}")
        except Forbidden:
            if refusal:
                raise Forbidden(refusal) from None
            raise


class BaseMutation(graphene.Mutation):  # type: ignore[misc]
    """A mutation with a declared ``access``, one ``perform``, and domain errors as ``userErrors``.

    A subclass declares, as class keywords: ``access`` (who may call it), ``input_type`` (the
    one ``input`` argument's type), ``output`` (a payload type with a ``user_errors`` field)
    and, where the generic FORBIDDEN message says too little, ``refusal``; then implements
    :meth:`perform`. The docstring is the mutation's description. An abstract family base
    (``class Meta: abstract = True``) may set ``access`` and ``Output`` as class attributes
    for all its members.
    """

    class Meta:
        abstract = True

    access: ClassVar[Access]
    refusal: ClassVar[str | None] = None  # the FORBIDDEN message, where the generic one says too little

    if TYPE_CHECKING:  # the class keywords, for the type checker; graphene's __init_subclass__ takes them
        def __init_subclass__(cls, *, access: Access = ..., input_type: Any = ..., output: Any = ...,
                              refusal: str = ..., **options: Any) -> None: ...

    @classmethod
    def __init_subclass_with_meta__(cls, access: Access | None = None, input_type: Any = None,
                                    refusal: str | None = None, **options: Any) -> None:
        if access is not None:
            cls.access = access
        if refusal is not None:
            cls.refusal = refusal
        if not isinstance(getattr(cls, "access", None), Access):
            raise TypeError(f"{cls.__name__} must declare who may call it: access=Access.<kind>")
        if input_type is not None:
            options["arguments"] = {"input": input_type(required=True)}
        super().__init_subclass_with_meta__(**options)

    @classmethod
    async def mutate(cls, root: Any, info: ResolveInfo, input: Any) -> Any:
        cls.access.admit(info.context, cls.refusal)
        payload_type = cls._meta.output
        try:
            fields = await cls.perform(info, input)
        except DomainError as error:
            return payload_type(user_errors=user_errors(error))
        return payload_type(user_errors=[], **fields)

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        """Decode the input, call one service function, return the payload's fields."""
        raise NotImplementedError(f"{cls.__name__} must implement perform")


# Every mutation takes ``idempotencyKey`` (coalition/ledger/idempotency.py) except these, whose retry
# leaves nothing more behind than the first call (tests/graphql/test_mutation_base.py holds every
# mutation of the schema to this). A write whose retry would make a second thing takes a key.
NATURALLY_IDEMPOTENT: dict[str, str] = {
    "deleteWebhookEndpoint": "a deleted endpoint stays deleted; a retry is WEBHOOK_ENDPOINT_NOT_FOUND, nothing more",
    "replayWebhookDelivery": "sets the one delivery PENDING again (same event id, same body; receivers drop "
                             "an event id they have seen); a retry re-queues the same delivery, creates none",
    "reviewFraudAlert": "the newest decision per subject counts; a retry stores the same decision again, which "
                        "changes no analysis (the history keeps every row by design)",
    "attachGiftCard": "sets the card's member; attaching it again to the same member changes nothing",
    "reconcilePosExport": "reads only: a mutation because it takes a file, it writes nothing",
    "claimMemberAccess": "a claim code is spent once (one conditional UPDATE); a retry is CLAIM_CODE_INVALID",
    "rotateMemberToken": "replaces: each call revokes every earlier token, so after any number of retries the "
                         "one live token is the one the caller received last (a replay could not show the "
                         "stored-hashed token again, and the member would be locked out)",
    "revokeMemberTokens": "revoking again finds nothing live: revokedCount 0, nothing changed",
    "issueMemberClaimCode": "replaces: each call revokes the member's earlier codes and tokens, so after any "
                            "number of retries the one live code is the one the admin received last (a replay "
                            "could not show the stored-hashed code again)",
    "resolveDispute": "closes an OPEN dispute once (conditional UPDATE); a retry is DISPUTE_NOT_OPEN",
    "suspendMerchant": "sets a status: suspending a suspended merchant changes nothing",
    "reactivateMerchant": "sets a status: reactivating an active merchant changes nothing",
}
