"""Sending the outbox: the ``webhooks`` job of ``coalition worker``.

Each tick takes the deliveries that are due and are the oldest unsent of their member at their
endpoint, and sends each member's in id order, one after another, stopping at the first that
fails: a later event of a member is never sent before an earlier one was answered 2xx. Members
go in parallel: at most ``PARALLEL`` at once, and at most ``PER_ENDPOINT`` of one endpoint, so a
slow or hanging receiver (a rogue partner's) takes a few slots, not all of them. A tick waits for
its sends at most ``webhook_timeout_s`` + ``TICK_GRACE_S``; those still running go on in the
background (their deliveries are claimed, so no later tick sends them again) and count in the
report of the tick during which they end. A delivery is claimed first (its ``next_attempt_at``
is moved past the timeout, compared and set in one UPDATE), so two workers do not send it at
once; at least once, not exactly once: a receiver deduplicates by the event id, the same on
every try.

A failure (not 2xx, a timeout, a refused address) is tried again after an exponential backoff
(``COALITION_WEBHOOK_BACKOFF_BASE_S`` doubling up to ``..._CAP_S``, +/-20 % jitter). Past the
retry window (``COALITION_WEBHOOK_RETRY_WINDOW_S``, 72 h) from its first try, the delivery is
FAILED and its endpoint disabled, with the reason on the endpoint (``disabledReason`` in the API)
and a log line; the endpoint's other deliveries wait, and replaying one enables it again
(:func:`coalition.webhooks.service.replay_delivery`). Redirects are not followed; the address is
checked again before every try (:mod:`coalition.webhooks.ssrf`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import aliased

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.errors import DomainError
from coalition.webhooks import ssrf
from coalition.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from coalition.webhooks.signing import HEADER, signature

logger = logging.getLogger("coalition.webhooks")
HEADS_PER_TICK = 500
PER_MEMBER_PER_TICK = 100
PARALLEL = 16
PER_ENDPOINT = 4
TICK_GRACE_S = 5.0


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    disabled: int = 0


def event_id(keys: NetworkKeys, delivery_id: int) -> str:
    return "evt_" + keys.global_ids.encode("WebhookEvent", delivery_id)


def event_data(keys: NetworkKeys, row: WebhookDelivery) -> dict[str, Any]:
    """The ``data`` of an event: global IDs, camelCase, as the GraphQL API names things."""
    raw = json.loads(row.data)
    ids = keys.global_ids
    member = {"id": ids.encode("Member", row.member_id)} if row.member_id is not None else None
    merchant = {"id": ids.encode("Merchant", row.merchant_id)} if row.merchant_id is not None else None
    if "entry_id" in raw:
        return {"transaction": {
            "id": ids.encode("Transaction", raw["entry_id"]), "kind": raw["kind"], "points": raw["points"],
            "amountMinor": raw.get("amount_minor"), "reference": raw.get("reference"),
            "hold": {"id": ids.encode("Hold", raw["hold_id"])} if raw.get("hold_id") else None,
            "reverses": {"id": ids.encode("Transaction", raw["reverses_id"])} if raw.get("reverses_id") else None,
            "member": member, "merchant": merchant,
        }}
    if row.type == "member.enrolled":
        return {"member": {**(member or {}), "loyaltyId": raw.get("loyalty_id")}, "merchant": merchant}
    if row.type == "settlement.closed":
        return {"settlementBatch": {"id": ids.encode("SettlementBatch", raw["batch_id"]),
                                    "periodEnd": raw.get("period_end")}, "merchant": merchant}
    if row.type == "giftcard.redeemed":  # the card's id and last four characters, never its code
        return {"giftCardTransaction": {
            "id": ids.encode("GiftCardTransaction", raw["gift_entry_id"]), "kind": raw["kind"],
            "amountMinor": raw["amount_minor"], "currency": raw["currency"], "reference": raw.get("reference"),
            "hold": {"id": ids.encode("GiftCardHold", raw["hold_id"])} if raw.get("hold_id") else None,
            "giftCard": {"id": ids.encode("GiftCard", raw["card_id"]), "last4": raw["last4"]},
        }, "merchant": merchant}
    if row.type == "voucher.issued":  # not the code: whoever holds it can use the voucher
        return {"voucher": {
            "id": ids.encode("Voucher", raw["voucher_id"]), "reward": {"id": ids.encode("Reward", raw["reward_id"])},
            "points": raw["points"], "expiresAt": raw.get("expires_at"),
            "stampCard": {"id": ids.encode("StampCard", raw["stamp_card_id"])} if raw.get("stamp_card_id") else None,
            "cardNumber": raw.get("card_number"),
            "redeemTransaction": ({"id": ids.encode("Transaction", raw["redeem_entry_id"])}
                                  if raw.get("redeem_entry_id") else None),
        }, "member": member, "merchant": merchant}
    if row.type == "fraud.alert":  # a merchant's copy names only its own members, and no merchants
        alert: dict[str, Any] = {"kind": raw["kind"], "score": raw["score"],
                                 "members": [{"id": ids.encode("Member", m)} for m in raw["member_ids"]]}
        if "merchant_ids" in raw:  # the admin's copy
            alert["merchants"] = [{"id": ids.encode("Merchant", m)} for m in raw["merchant_ids"]]
            alert["reason"] = raw.get("reason")
        return {"fraudAlert": alert, "merchant": merchant}
    return {"merchant": merchant, "member": member}


def body_of(keys: NetworkKeys, row: WebhookDelivery) -> bytes:
    created = row.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"id": event_id(keys, row.id), "type": row.type, "createdAt": created,
                       "data": event_data(keys, row)}, separators=(",", ":")).encode()


class Deliverer:
    """Sends due deliveries (:meth:`run_once`); the worker calls it every ``COALITION_WEBHOOK_POLL_S``."""

    def __init__(self, db: Database, settings: Settings, keys: NetworkKeys, *,
                 clock: Callable[[], dt.datetime] = utcnow, client: httpx.AsyncClient | None = None) -> None:
        self.db, self.settings, self.keys, self.clock = db, settings, keys, clock
        self.client = client or httpx.AsyncClient(timeout=settings.webhook_timeout_s, follow_redirects=False,
                                                  trust_env=False)
        self._gate: asyncio.Semaphore | None = None
        self._endpoint_gates: dict[int, asyncio.Semaphore] = {}
        # The member queues running (or waiting for a slot), by (endpoint, member or delivery): a tick
        # does not start one again.
        self._running: dict[tuple[int, int, int], asyncio.Task[None]] = {}
        self._tally = DeliveryReport()

    async def aclose(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()

    def backoff_s(self, attempts: int) -> float:
        settings = self.settings
        base: float = min(settings.webhook_backoff_cap_s, settings.webhook_backoff_base_s * 2 ** (attempts - 1))
        return float(base * random.uniform(0.8, 1.2))  # jitter: endpoints that failed together retry apart

    async def _heads(self, now: dt.datetime) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
        d = aliased(WebhookDelivery)
        p = aliased(WebhookDelivery)
        earlier = exists().where(p.endpoint_id == d.endpoint_id, p.member_id == d.member_id, p.id < d.id,
                                 p.status != DeliveryStatus.DELIVERED)
        query = (select(d, WebhookEndpoint).join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
                 .where(d.status == DeliveryStatus.PENDING, d.next_attempt_at <= now, WebhookEndpoint.active,
                        or_(d.member_id.is_(None), ~earlier))
                 .order_by(d.id).limit(HEADS_PER_TICK))
        async with self.db.session() as session:
            return [(row[0], row[1]) for row in (await session.execute(query)).all()]

    async def _next_of(self, row: WebhookDelivery) -> WebhookDelivery | None:
        if row.member_id is None:
            return None
        query = (select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == row.endpoint_id, WebhookDelivery.member_id == row.member_id,
            WebhookDelivery.id > row.id, WebhookDelivery.status == DeliveryStatus.PENDING)
            .order_by(WebhookDelivery.id).limit(1))
        async with self.db.session() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def _claim(self, row: WebhookDelivery, now: dt.datetime) -> bool:
        lease = now + dt.timedelta(seconds=self.settings.webhook_timeout_s + 30)
        async with self.db.transaction() as conn:
            claimed = await conn.execute(update(WebhookDelivery).where(
                WebhookDelivery.id == row.id, WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at == row.next_attempt_at).values(next_attempt_at=lease))
        return bool(claimed.rowcount == 1)

    async def run_once(self) -> DeliveryReport:
        """Start the due member queues; wait for them a bounded time; what was done since the last call."""
        heads = await self._heads(self.clock())
        if self._gate is None:
            self._gate = asyncio.Semaphore(PARALLEL)
        started: list[asyncio.Task[None]] = []
        secrets: dict[int, str] = {}
        for row, endpoint in heads:
            key = (endpoint.id, 0, row.member_id) if row.member_id is not None else (endpoint.id, 1, row.id)
            if key in self._running:
                continue
            if endpoint.id not in secrets:
                secrets[endpoint.id] = self.keys.decrypt(endpoint.secret_encrypted)
            task = asyncio.get_running_loop().create_task(self._member_queue(row, endpoint, secrets[endpoint.id]))
            self._running[key] = task
            task.add_done_callback(functools.partial(self._ended, key))
            started.append(task)
        if started:
            await asyncio.wait(started, timeout=self.settings.webhook_timeout_s + TICK_GRACE_S)
        report, self._tally = self._tally, DeliveryReport()
        return report

    def _ended(self, key: tuple[int, int, int], task: asyncio.Task[None]) -> None:
        self._running.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook deliveries of endpoint %s stopped: %r", key[0], task.exception())

    async def _member_queue(self, row: WebhookDelivery, endpoint: WebhookEndpoint, secret: str) -> None:
        gate = self._endpoint_gates.setdefault(endpoint.id, asyncio.Semaphore(PER_ENDPOINT))
        assert self._gate is not None
        async with gate, self._gate:  # the endpoint's slot first: waiting for it holds no shared slot
            current: WebhookDelivery | None = row
            for _ in range(PER_MEMBER_PER_TICK):
                if current is None or current.next_attempt_at > self.clock():
                    return
                if not await self._claim(current, self.clock()):
                    return
                if not await self._send(current, endpoint, secret):
                    return
                current = await self._next_of(current)

    async def _send(self, row: WebhookDelivery, endpoint: WebhookEndpoint, secret: str) -> bool:
        body = body_of(self.keys, row)
        started = self.clock()
        status_code: int | None = None
        error: str | None = None
        try:
            address = await ssrf.check_url(endpoint.url, self.settings.webhook_allowed_hosts)
            url, host_header, extensions = (endpoint.url, {}, {}) if address is None else \
                ssrf.pinned(endpoint.url, address)
            timestamp = int(started.timestamp())
            response = await self.client.post(url, content=body, extensions=extensions, headers={
                **host_header, "Content-Type": "application/json", HEADER: signature(secret, timestamp, body),
                "User-Agent": "Coalition-Webhooks/1"})
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except DomainError as exc:
            error = f"{exc.code}: {exc.message}"[:300]
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.webhook_timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}"[:300]
        now = self.clock()
        report = self._tally  # of the tick running now (a send may outlast the tick it started in)
        first = row.first_attempt_at or started
        values: dict[str, Any] = {"attempts": row.attempts + 1, "last_attempt_at": now, "first_attempt_at": first,
                                  "last_status_code": status_code, "last_error": error}
        if error is None:
            values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
            report.sent += 1
        elif (now - first).total_seconds() >= self.settings.webhook_retry_window_s:
            values |= {"status": DeliveryStatus.FAILED}
            report.failed += 1
        else:
            values |= {"next_attempt_at": now + dt.timedelta(seconds=self.backoff_s(row.attempts + 1))}
            report.failed += 1
        async with self.db.transaction() as conn:
            await conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == row.id).values(**values))
            if values.get("status") == DeliveryStatus.FAILED:
                reason = (f"disabled at {now.isoformat()}: event {event_id(self.keys, row.id)} failed for "
                          f"{self.settings.webhook_retry_window_s / 3600:g} h ({error}); deliveries to it stopped "
                          "and wait: once the receiver answers again, replay this event (replayWebhookDelivery) to "
                          "enable the endpoint and send every waiting event, in order")
                await conn.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id).values(
                    active=False, disabled_at=now, disabled_reason=reason[:500], updated_at=now))
                report.disabled += 1
                logger.warning("webhook endpoint %s (merchant %s) disabled: deliveries failed for the retry window",
                               endpoint.id, endpoint.merchant_id)
        return error is None
