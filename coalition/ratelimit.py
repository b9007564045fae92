"""Per-key rate limits: fixed one-second windows, in process or shared through Redis.

A key (an API key's id, a client address) may make ``limit_per_s`` hits in each
wall-clock second; the next hit in the same second is refused with the seconds left
until the window turns over, which the API sends as ``Retry-After``.

Fixed windows allow a burst of up to twice the limit across a window boundary; in
exchange a hit costs one counter increment, and in Redis one round trip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

logger = logging.getLogger("coalition.ratelimit")

Clock = Callable[[], float]


class RateLimiter(Protocol):
    async def hit(self, key: str) -> float | None:
        """Count one hit for ``key``: None when allowed, else the seconds until it may retry."""
        ...

    async def aclose(self) -> None:
        """Release what the limiter holds (connections)."""
        ...


def _check_limit(limit_per_s: int) -> None:
    if limit_per_s < 1:
        raise ValueError(f"limit_per_s must be at least 1, got {limit_per_s}")


class InProcessRateLimiter:
    """Counts in a dict; right for one process (the embedded default and tests)."""

    def __init__(self, limit_per_s: int, *, clock: Clock = time.time) -> None:
        _check_limit(limit_per_s)
        self.limit_per_s = limit_per_s
        self._clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}

    async def hit(self, key: str) -> float | None:
        now = self._clock()
        window = int(now)
        if window != self._window:
            # Only the current window matters, so the dict never holds more keys than hit
            # in one second.
            self._window = window
            self._counts = {}
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count > self.limit_per_s:
            return (window + 1) - now
        return None

    async def aclose(self) -> None:
        self._counts = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limit_per_s={self.limit_per_s!r})"


class RedisRateLimiter:
    """Counts in Redis, so every API process shares one limit per key.

    One key per (key, second): INCR, and EXPIRE so the key outlives its window only
    briefly. When Redis cannot be reached the hit is allowed and a warning logged:
    rate limiting going down must not take the API down with it.
    """

    def __init__(
        self,
        redis_client: redis_asyncio.Redis,
        limit_per_s: int,
        prefix: str = "coalition:rl:",
        *,
        clock: Clock = time.time,
        fail_open: bool = True,
    ) -> None:
        _check_limit(limit_per_s)
        self.redis = redis_client
        self.limit_per_s = limit_per_s
        self.prefix = prefix
        self.fail_open = fail_open
        self._clock = clock

    async def hit(self, key: str) -> float | None:
        now = self._clock()
        window = int(now)
        counter = f"{self.prefix}{key}:{window}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(counter)
                # Two seconds, not one: clocks of API processes differ a little.
                pipe.expire(counter, 2)
                count, _ = await pipe.execute()
        except RedisError as error:
            if not self.fail_open:
                raise
            logger.warning("rate limit not checked for %s: Redis failed: %r", key, error)
            return None
        if int(count) > self.limit_per_s:
            return (window + 1) - now
        return None

    async def aclose(self) -> None:
        await self.redis.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limit_per_s={self.limit_per_s!r}, prefix={self.prefix!r})"


def make_rate_limiter(redis_url: str | None, limit_per_s: int) -> RateLimiter:
    """A Redis limiter when ``redis_url`` is given (production), else an in-process one."""
    if redis_url:
        client = redis_asyncio.Redis.from_url(redis_url)
        return RedisRateLimiter(client, limit_per_s)
    return InProcessRateLimiter(limit_per_s)
