"""The outbox: a delivery row per endpoint that wants an event, in the transaction that made it.

Every ledger write notes its entry (``ledger.core.insert_entry``), enrolment and a settlement run
note theirs (``db.note_change``); :meth:`Database.transaction` hands the notes to
:meth:`Outbox.before_commit` as its last statement, under the row locks the write took, so
the ids of one member's rows follow the order their transactions commit. The one-statement earn
and redemption (``ledger/fastpath.py``) write the same rows in their own statement.

Which merchants have endpoints is read from a per-process cache (:class:`EndpointCache`): its
version (the endpoints' count and latest change) is read again at most every
``COALITION_WEBHOOK_CACHE_S`` (default 1 s), and at once in the process that changed an endpoint.
A merchant without endpoints costs a write one dictionary lookup and no statement.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.caching import Refreshed
from coalition.db import Change, CommitHooks, Database, utcnow
from coalition.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

ADMIN = None  # the merchant_id key of endpoints that receive every merchant's events
# Event types whose admin copy is an event of its own (merchant_id None) and whose merchants' copies are
# cut down for them: the admin's endpoints do not receive the merchants' copies too.
ADMIN_HAS_ITS_OWN = frozenset({"fraud.alert"})


class EndpointCache:
    """Active endpoints by merchant (None: the admin's, every merchant's events) and event type.

    Re-checked one read at a time (:class:`coalition.caching.Refreshed`): requests that come while
    the version is read take the endpoints they have, instead of queueing behind the read.
    """

    def __init__(self, db: Database, ttl_s: float = 1.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._version: tuple[Any, ...] | None = None
        self._by_merchant: dict[int | None, list[tuple[int, frozenset[str]]]] = {}
        self._checked = Refreshed(self._refresh, ttl_s)

    def invalidate(self) -> None:
        self._version = None
        self._checked.invalidate()

    async def _refresh(self) -> None:
        async with self.db.read() as conn:
            version = tuple((await conn.execute(
                select(func.count(WebhookEndpoint.id), func.max(WebhookEndpoint.updated_at))
            )).one())
            if version != self._version:
                rows = await conn.execute(select(WebhookEndpoint.id, WebhookEndpoint.merchant_id,
                                                 WebhookEndpoint.events).where(WebhookEndpoint.active))
                by_merchant: dict[int | None, list[tuple[int, frozenset[str]]]] = {}
                for row in rows:
                    events = frozenset(e for e in row.events.split(",") if e)
                    by_merchant.setdefault(row.merchant_id, []).append((row.id, events))
                self._by_merchant, self._version = by_merchant, version

    async def endpoints(self, merchant_id: int | None, event_type: str) -> list[int]:
        await self._checked.get()
        admin = merchant_id is None or event_type not in ADMIN_HAS_ITS_OWN
        found = [i for i, events in self._by_merchant.get(ADMIN, ()) if event_type in events] if admin else []
        if merchant_id is not None:
            found += [i for i, events in self._by_merchant.get(merchant_id, ()) if event_type in events]
        return sorted(found)

    async def wants(self, merchant_id: int, event_type: str) -> bool:
        await self._checked.get()
        if not self._by_merchant:
            return False
        return bool(await self.endpoints(merchant_id, event_type))


_insert_delivery = insert(WebhookDelivery)


class Outbox:
    """The commit hooks a :class:`Database` runs (``db.hooks``): outbox rows before, live events after."""

    def __init__(self, db: Database, cache_s: float = 1.0,
                 publish: Callable[[list[Change]], None] | None = None) -> None:
        self.cache = EndpointCache(db, cache_s)
        self.publish = publish

    async def before_commit(self, conn: AsyncConnection, changes: list[Change]) -> None:
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for change in changes:
            # The network's own entries (expiry, bonuses; merchant_id None) go to the admin's endpoints only.
            for endpoint_id in await self.cache.endpoints(change.merchant_id, change.type):
                rows.append({
                    "endpoint_id": endpoint_id, "merchant_id": change.merchant_id, "member_id": change.member_id,
                    "type": change.type, "data": json.dumps(change.data, default=str, separators=(",", ":")),
                    "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": now,
                    "created_at": change.created_at,
                })
        if rows:
            await conn.execute(_insert_delivery, rows)

    def after_commit(self, changes: list[Change]) -> None:
        if self.publish is not None:
            self.publish(changes)

    def hooks(self) -> CommitHooks:
        return CommitHooks(before=self.before_commit, after=self.after_commit, wants=self.cache.wants)


def install(db: Database, *, cache_s: float = 1.0, publish: Callable[[list[Change]], None] | None = None) -> Outbox:
    """Make every write transaction of ``db`` fill the outbox (and, given ``publish``, report live events)."""
    outbox = Outbox(db, cache_s, publish)
    db.hooks = outbox.hooks()
    return outbox


def outbox_of(db: Database) -> EndpointCache | None:
    """The cache of the outbox installed on ``db``, to invalidate after an endpoint changed."""
    hooks = db.hooks
    owner = getattr(hooks.before, "__self__", None) if hooks is not None else None
    return owner.cache if isinstance(owner, Outbox) else None
