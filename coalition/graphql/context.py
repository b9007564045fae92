"""The per-request context: services, the caller, and lazily built DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import GraphQLObjectType, GraphQLSchema

from coalition.auth.models import Role
from coalition.auth.service import Caller
from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.giftcards.service import GiftCards
from coalition.graphql.errors import Forbidden, Unauthenticated
from coalition.ledger.service import Ledger
from coalition.live.broker import Broker
from coalition.network.store import InsightStore
from coalition.ratelimit import InProcessRateLimiter, RateLimiter
from coalition.settlement.policy import PolicyCache


@dataclass
class Services:
    """What the application builds once per process and every request shares."""

    settings: Settings
    db: Database
    keys: NetworkKeys
    ledger: Ledger
    insights: InsightStore | None = None  # stored network analysis (made by the app factory)
    gift_cards: GiftCards | None = None  # made by the app factory (guessing counted in Redis), else on first use
    lookup_limiter: RateLimiter | None = None  # lookups by contact per merchant (made by the app factory)
    policies: PolicyCache | None = None  # the network policy's versions, re-read every few seconds

    def lookups(self) -> RateLimiter:
        if self.lookup_limiter is None:
            self.lookup_limiter = InProcessRateLimiter(self.settings.lookup_per_min, window_s=60)
        return self.lookup_limiter

    def policy_cache(self) -> PolicyCache:
        if self.policies is None:
            self.policies = PolicyCache(self.db, self.settings)
        return self.policies
    live: Broker | None = None  # live subscriptions' fan-out (made by the app factory)


@dataclass
class Context:
    services: Services
    caller: Caller | None
    _loaders: dict[type, Any] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def insights(self) -> InsightStore:
        if self.services.insights is None:
            self.services.insights = InsightStore(self.services.db)
        return self.services.insights

    @property
    def gift_cards(self) -> GiftCards:
        gift_cards = self.services.gift_cards
        if gift_cards is None:
            s = self.services
            gift_cards = s.gift_cards = GiftCards(s.db, s.settings, s.keys)
        return gift_cards

    def loader(self, cls: type) -> Any:
        """The request's instance of a DataLoader class (one per request, so no stale cache)."""
        instance = self._loaders.get(cls)
        if instance is None:
            instance = self._loaders[cls] = cls(self.services.db)
        return instance

    def require_caller(self) -> Caller:
        if self.caller is None:
            raise Unauthenticated("send an API key or member token: Authorization: Bearer <key>")
        return self.caller

    def require_admin(self) -> Caller:
        caller = self.require_caller()
        if caller.role != Role.ADMIN:
            raise Forbidden("this operation needs an admin key")
        return caller

    def require_merchant(self) -> int:
        caller = self.require_caller()
        if caller.role != Role.MERCHANT or caller.merchant_id is None:
            raise Forbidden("this operation needs a merchant API key")
        return caller.merchant_id

    def require_member(self) -> int:
        caller = self.require_caller()
        if caller.role != Role.MEMBER or caller.member_id is None:
            raise Forbidden("this operation needs the member's own token (Authorization: Bearer cmt_...)")
        return caller.member_id

    @property
    def merchant_id(self) -> int:
        """The calling merchant's id: for operations declared for merchants (else FORBIDDEN)."""
        return self.require_merchant()

    @property
    def member_id(self) -> int:
        """The calling member's id: for operations declared for members (else FORBIDDEN)."""
        return self.require_member()

    def require_staff(self) -> Caller:
        """An admin or a merchant (not a member token)."""
        caller = self.require_caller()
        if caller.role == Role.MEMBER:
            raise Forbidden("member tokens can only read their own member through `viewer`")
        return caller


class ResolveInfo(Protocol):
    """What every resolver and mutation gets as ``info``: graphql-core's ``GraphQLResolveInfo``
    seen through the attributes Coalition reads, with ``context`` typed as :class:`Context`
    (graphql-core types it ``Any``, which hid the context from the type checker)."""

    @property
    def context(self) -> Context: ...

    @property
    def field_name(self) -> str: ...

    @property
    def parent_type(self) -> GraphQLObjectType: ...

    @property
    def schema(self) -> GraphQLSchema: ...
