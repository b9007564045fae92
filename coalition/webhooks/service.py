"""Registering, listing, deleting endpoints; listing and replaying deliveries.

``merchant_id`` None is the admin: its endpoints receive every merchant's events and it may
see every endpoint; a merchant sees only its own (another's answers as a missing one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, text, update

from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.errors import check_idempotency_key
from coalition.ledger.core import EVENT_TYPES, request_hash
from coalition.ledger.idempotency import KeyColumns, find_earlier
from coalition.webhooks import ssrf
from coalition.webhooks.errors import (
    EndpointDisabled,
    TooManyEndpoints,
    UnknownEventType,
    WebhookDeliveryNotFound,
    WebhookEndpointNotFound,
)
from coalition.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from coalition.webhooks.outbox import outbox_of
from coalition.webhooks.signing import new_secret

# What a merchant can subscribe to (docs/webhooks.md). The network's own entries (expiry, bonuses)
# belong to no merchant; an admin endpoint receives them too.
EVENT_TYPE_NAMES = tuple(sorted({*EVENT_TYPES.values(), "member.enrolled", "settlement.closed", "giftcard.redeemed",
                                 "voucher.issued", "fraud.alert"}))
MAX_ENDPOINTS = 10
ENDPOINT_KEYS = KeyColumns(WebhookEndpoint, key="idempotency_key", fingerprint="request_hash", scope=("owner",))
# PostgreSQL: one owner's endpoint registrations take turns, so that each counts every endpoint
# committed before it (two at once would both count 9 and both insert). A transaction-scoped
# advisory lock, in the two-key space ("WHEP", the owner's hash) apart from settlement's
# one-key lock: the admin owns no row to lock, and locking the merchant's row FOR UPDATE would
# also hold up its earns, whose foreign keys take KEY SHARE locks on it.
_LOCK_OWNER = text(f"SELECT pg_advisory_xact_lock({int.from_bytes(b'WHEP', 'big')}, hashtext(:owner))")


@dataclass(frozen=True)
class Registration:
    endpoint: WebhookEndpoint
    secret: str


def _owner(merchant_id: int | None) -> str:
    return "admin" if merchant_id is None else f"merchant:{merchant_id}"


def check_events(events: Sequence[str]) -> list[str]:
    if not events:
        raise UnknownEventType(f"name at least one event type: {', '.join(EVENT_TYPE_NAMES)}", code="NO_EVENT_TYPES",
                               field="events")
    unknown = sorted({e for e in events if e not in EVENT_TYPE_NAMES})
    if unknown:
        raise UnknownEventType(f"unknown event types {', '.join(repr(e[:40]) for e in unknown[:5])}; known: "
                               f"{', '.join(EVENT_TYPE_NAMES)}", field="events")
    return sorted(set(events))


async def create_endpoint(db: Database, keys: NetworkKeys, *, merchant_id: int | None, url: str,
                          events: Sequence[str], idempotency_key: str,
                          allowed_hosts: Collection[str]) -> Registration:
    """Register an endpoint; its signing secret is returned (and stored encrypted with the network's key).

    A retry with the same key and input returns the same endpoint and secret; other input under the
    key is IDEMPOTENCY_KEY_CONFLICT.
    """
    key = check_idempotency_key(idempotency_key)
    ssrf.parse(url)
    wanted = check_events(events)
    fingerprint = request_hash("createWebhookEndpoint", url=url, events=wanted)
    owner = _owner(merchant_id)
    async with db.session() as session:
        earlier = await find_earlier(session, ENDPOINT_KEYS, (owner,), key, fingerprint)
    if earlier is not None:
        return Registration(earlier, keys.decrypt(earlier.secret_encrypted))
    await ssrf.check_url(url, allowed_hosts)
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(merchant_id=merchant_id, owner=owner, url=url, events="," + ",".join(wanted) + ",",
                               secret_encrypted=keys.encrypt(secret), idempotency_key=key, request_hash=fingerprint,
                               active=True, created_at=now, updated_at=now)
    async with db.transaction() as conn:
        if not db.is_sqlite:  # SQLite: the transaction's BEGIN IMMEDIATE already excludes other writers
            await conn.execute(_LOCK_OWNER, {"owner": owner})
        async with db.sessions(bind=conn) as session:
            # Looked for again under the lock: a call with the same key may have committed meanwhile.
            earlier = await find_earlier(session, ENDPOINT_KEYS, (owner,), key, fingerprint)
            if earlier is not None:
                return Registration(earlier, keys.decrypt(earlier.secret_encrypted))
            count = (await session.execute(select(func.count(WebhookEndpoint.id)).where(
                WebhookEndpoint.owner == owner, WebhookEndpoint.deleted_at.is_(None)))).scalar_one()
            if count >= MAX_ENDPOINTS:
                raise TooManyEndpoints(f"at most {MAX_ENDPOINTS} endpoints; delete one first")
            session.add(endpoint)
            await session.flush()
    _changed(db)
    return Registration(endpoint, secret)


def _changed(db: Database) -> None:
    cache = outbox_of(db)
    if cache is not None:
        cache.invalidate()


def _visible(merchant_id: int | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [WebhookEndpoint.deleted_at.is_(None)]
    if merchant_id is not None:
        where.append(WebhookEndpoint.merchant_id == merchant_id)
    return where


async def list_endpoints(db: Database, merchant_id: int | None, *, after_id: int | None,
                         limit: int) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(*_visible(merchant_id)).order_by(WebhookEndpoint.id).limit(limit)
    if after_id is not None:
        query = query.where(WebhookEndpoint.id > after_id)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def get_endpoint(db: Database, merchant_id: int | None, endpoint_id: int) -> WebhookEndpoint | None:
    async with db.session() as session:
        return (await session.execute(select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, *_visible(merchant_id)))).scalar_one_or_none()


async def delete_endpoint(db: Database, merchant_id: int | None, endpoint_id: int) -> int:
    """Delete (deactivate and hide) an endpoint: its pending deliveries are not sent."""
    now = utcnow()
    async with db.transaction() as conn:
        done = (await conn.execute(update(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, *_visible(merchant_id)).values(
            active=False, deleted_at=now, updated_at=now).returning(WebhookEndpoint.id))).first()
    if done is None:
        raise WebhookEndpointNotFound("no such webhook endpoint", field="endpointId")
    _changed(db)
    return endpoint_id


async def list_deliveries(db: Database, endpoint_id: int, *, after_id: int | None,
                          limit: int) -> list[WebhookDelivery]:
    """An endpoint's deliveries, newest first (the caller has seen the endpoint)."""
    query = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
             .order_by(WebhookDelivery.id.desc()).limit(limit))
    if after_id is not None:
        query = query.where(WebhookDelivery.id < after_id)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def get_delivery(db: Database, merchant_id: int | None, delivery_id: int) -> WebhookDelivery | None:
    query = select(WebhookDelivery).join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id).where(
        WebhookDelivery.id == delivery_id, *_visible(merchant_id))
    async with db.session() as session:
        return (await session.execute(query)).scalar_one_or_none()


async def replay_delivery(db: Database, merchant_id: int | None, delivery_id: int,
                          now: dt.datetime | None = None) -> WebhookDelivery:
    """Send a delivery again (same event id, same body), whatever became of it, as soon as the worker can.

    Replaying a delivery of an endpoint that was disabled (failing past the retry window) enables the
    endpoint again: the owner says its receiver answers now. Its deliveries that failed or waited
    resume with it, in order, with a new retry window: none of the outage's events is lost. A deleted
    endpoint stays deleted (WEBHOOK_ENDPOINT_DISABLED).
    """
    now = now or utcnow()
    delivery = await get_delivery(db, merchant_id, delivery_id)
    if delivery is None:
        raise WebhookDeliveryNotFound("no such webhook delivery", field="deliveryId")
    enabled = False
    async with db.transaction() as conn:
        endpoint = (await conn.execute(select(WebhookEndpoint.active, WebhookEndpoint.deleted_at).where(
            WebhookEndpoint.id == delivery.endpoint_id))).one()
        if endpoint.deleted_at is not None:
            raise EndpointDisabled("the endpoint was deleted; register a new one")
        if not endpoint.active:
            await conn.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == delivery.endpoint_id).values(
                active=True, disabled_at=None, disabled_reason=None, updated_at=now))
            await conn.execute(update(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == delivery.endpoint_id,
                WebhookDelivery.status != DeliveryStatus.DELIVERED).values(
                status=DeliveryStatus.PENDING, next_attempt_at=now, first_attempt_at=None))
            enabled = True
        await conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
            status=DeliveryStatus.PENDING, next_attempt_at=now, first_attempt_at=None, attempts=0))
    if enabled:
        _changed(db)
    found = await get_delivery(db, merchant_id, delivery_id)
    assert found is not None
    return found
