"""Fan-out of committed ledger transactions to the live subscriptions of every API process.

:meth:`Broker.publish` is called after the commit (``db.CommitHooks.after``, and by the
one-statement writes after their statement). With Redis every process publishes to one channel
(batched in a pipeline by a background task) and reads it back, so a write in any process
reaches the subscribers of all; without Redis (the embedded default) the events go straight to
this process's subscribers. A subscriber's queue is bounded: one that cannot keep up loses
its subscription (:class:`Overflow`) rather than make the process hold an unbounded backlog.
Events are not durable: a subscriber sees what is committed while it listens (webhooks are the
durable way).

Redis delivers a published message to every subscriber of its channel whatever database number
either connection selected, whereas keys live apart per database. Deployments (and test runs)
sharing one Redis server are kept apart by the database number in their URL, so the channel
names it too: ``coalition:live:transactions:db6`` for ``redis://host/6``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from coalition.db import Change

logger = logging.getLogger("coalition.live")
CHANNEL = "coalition:live:transactions"
QUEUE_SIZE = 1000
PUBLISH_BATCH = 500
WARN_EVERY_S = 10.0


class Overflow(Exception):
    """The subscriber fell more than QUEUE_SIZE events behind."""


@dataclass(eq=False)
class Subscription:
    """One subscriber's filter and queue: ``merchant_id`` / ``member_id`` None means any."""

    merchant_id: int | None
    member_id: int | None
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def matches(self, event: dict[str, Any]) -> bool:
        return ((self.merchant_id is None or event.get("merchant_id") == self.merchant_id)
                and (self.member_id is None or event.get("member_id") == self.member_id))


def event_of(change: Change) -> dict[str, Any] | None:
    if "entry_id" not in change.data:
        return None
    return {**change.data, "merchant_id": change.merchant_id, "member_id": change.member_id,
            "created_at": change.created_at.isoformat()}


CLOSE_WAIT_S = 2.0


def channel_of(redis: aioredis.Redis) -> str:
    """The live channel of the Redis database ``redis`` selects (pub/sub itself ignores the number)."""
    return f"{CHANNEL}:db{int(redis.connection_pool.connection_kwargs.get('db', 0))}"


class Broker:
    def __init__(self, redis_url: str | None = None) -> None:
        self._redis = aioredis.Redis.from_url(redis_url) if redis_url else None
        self.channel = channel_of(self._redis) if self._redis is not None else CHANNEL
        self._subscriptions: set[Subscription] = set()
        self._outgoing: list[bytes] = []
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listening: asyncio.Event | None = None
        self._warned_at = -WARN_EVERY_S

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, changes: list[Change]) -> None:
        """Hand committed changes to every process's subscribers (never blocks, never raises)."""
        if self._redis is None and not self._subscriptions:
            return  # nobody listens: no event to build (every earn and redemption comes here)
        events = [event for event in map(event_of, changes) if event is not None]
        if not events:
            return
        if self._redis is None:
            for event in events:
                self._dispatch(event)
            return
        self._outgoing.extend(json.dumps(event, separators=(",", ":")).encode() for event in events)
        self._start()
        assert self._wake is not None
        self._wake.set()

    def _dispatch(self, event: dict[str, Any]) -> None:
        for subscription in list(self._subscriptions):
            if subscription.matches(event):
                try:
                    subscription.queue.put_nowait(event)
                except asyncio.QueueFull:
                    subscription.overflowed = True
                    self._subscriptions.discard(subscription)
                    with contextlib.suppress(asyncio.QueueFull):
                        subscription.queue.get_nowait()
                        subscription.queue.put_nowait(None)

    def _start(self, *, reading: bool = False) -> None:
        """Start the publisher (the first publish) and the reader (the first subscriber: a process nobody
        subscribes to does not listen)."""
        if self._redis is None:
            return
        loop = asyncio.get_running_loop()
        if self._wake is None:
            self._wake = asyncio.Event()
            self._tasks.append(loop.create_task(self._publisher()))
        if reading and self._listening is None:
            self._listening = asyncio.Event()
            self._tasks.append(loop.create_task(self._reader()))

    async def ready(self) -> None:
        """Wait until this process listens to the channel (with Redis); tests and startup use it."""
        self._start(reading=True)
        if self._listening is not None:
            await asyncio.wait_for(self._listening.wait(), 10)

    async def _publisher(self) -> None:
        assert self._redis is not None and self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outgoing:
                batch, self._outgoing = self._outgoing[:PUBLISH_BATCH], self._outgoing[PUBLISH_BATCH:]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for message in batch:
                            pipe.publish(self.channel, message)
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    # The outage itself is logged once by the Redis availability tracker; these are details.
                    if time.monotonic() - self._warned_at > WARN_EVERY_S:
                        self._warned_at = time.monotonic()
                        logger.debug("live events lost: Redis refused a publish (%s)", type(exc).__name__)

    async def _reader(self) -> None:
        assert self._redis is not None and self._listening is not None
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._listening.set()
                    while True:
                        message = await pubsub.get_message(timeout=30.0)
                        if message is not None and message.get("type") == "message":
                            self._dispatch(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ValueError) as exc:
                logger.warning("live events: the Redis subscription broke (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task blocked on a connection that never answers must not hold up shutdown.
            await asyncio.wait(self._tasks, timeout=CLOSE_WAIT_S)
        self._tasks, self._wake, self._listening = [], None, None
        if self._redis is not None:
            await self._redis.aclose()

    def open(self, *, merchant_id: int | None, member_id: int | None) -> Stream:
        """A subscription, registered now (so nothing committed from here on is missed); ``aclose`` ends it."""
        subscription = Subscription(merchant_id, member_id)
        self._start(reading=True)
        self._subscriptions.add(subscription)
        return Stream(self, subscription)

    def close(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)


class Stream:
    """The events of one subscription, as an async iterator; ``aclose`` unregisters it."""

    def __init__(self, broker: Broker, subscription: Subscription) -> None:
        self.broker = broker
        self.subscription = subscription

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        event = await self.subscription.queue.get()
        if event is None:
            self.broker.close(self.subscription)
            raise Overflow(f"more than {QUEUE_SIZE} events behind: subscribe again")
        return event

    async def aclose(self) -> None:
        self.broker.close(self.subscription)
