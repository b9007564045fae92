"""Per-key rate limits: fixed windows (one second by default), in process or shared through Redis.

A key (an API key's id, a client address) may make ``limit_per_s`` hits in each
wall-clock window of ``window_s`` seconds (one unless given: the request limit); the
next hit in the same window is refused with the seconds left until the window turns
over, which the API sends as ``Retry-After``. :meth:`RateLimiter.retry_after` asks the
same question without counting a hit (the authentication backend refuses an address
that used up its budget of failed credentials before it looks another one up), and
:meth:`RateLimiter.companion` makes a limiter with another budget over the same store.

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

from coalition.availability import Availability, Unavailable

logger = logging.getLogger("coalition.ratelimit")

Clock = Callable[[], float]


class RateLimiter(Protocol):
    async def hit(self, key: str) -> float | None:
        """Count one hit for ``key``: None when allowed, else the seconds until it may retry."""
        ...

    async def retry_after(self, key: str) -> float | None:
        """Without counting: None when ``key`` may hit now, else the seconds until it may."""
        ...

    def companion(self, limit: int, *, window_s: int, prefix: str) -> RateLimiter:
        """Another limiter (``limit`` hits per ``window_s``) over the same store and connection."""
        ...

    async def aclose(self) -> None:
        """Release what the limiter holds (connections)."""
        ...


def _check_limit(limit_per_s: int, window_s: int = 1) -> None:
    if limit_per_s < 1:
        raise ValueError(f"limit_per_s must be at least 1, got {limit_per_s}")
    if window_s < 1:
        raise ValueError(f"window_s must be at least 1, got {window_s}")


class InProcessRateLimiter:
    """Counts in a dict; right for one process (the embedded default and tests)."""

    def __init__(self, limit_per_s: int, *, window_s: int = 1, clock: Clock = time.time) -> None:
        _check_limit(limit_per_s, window_s)
        self.limit_per_s = limit_per_s
        self.window_s = window_s
        self._clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}

    def _turn(self, now: float) -> int:
        window = int(now // self.window_s)
        if window != self._window:
            # Only the current window matters, so the dict never holds more keys than hit
            # in one window.
            self._window = window
            self._counts = {}
        return window

    async def hit(self, key: str) -> float | None:
        now = self._clock()
        window = self._turn(now)
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count > self.limit_per_s:
            return (window + 1) * self.window_s - now
        return None

    async def retry_after(self, key: str) -> float | None:
        now = self._clock()
        window = self._turn(now)
        if self._counts.get(key, 0) >= self.limit_per_s:
            return (window + 1) * self.window_s - now
        return None

    def companion(self, limit: int, *, window_s: int, prefix: str) -> RateLimiter:
        return InProcessRateLimiter(limit, window_s=window_s, clock=self._clock)

    async def aclose(self) -> None:
        self._counts = {}

    def __repr__(self) -> str:
        window = f", window_s={self.window_s!r}" if self.window_s != 1 else ""
        return f"{type(self).__name__}(limit_per_s={self.limit_per_s!r}{window})"


class RedisRateLimiter:
    """Counts in Redis, so every API process shares one limit per key.

    One key per (key, second): INCR, and EXPIRE so the key outlives its window only
    briefly. When Redis fails, rate limiting must not take the API down with it: with
    ``fail_open`` (the default) the process counts on its own, in process, for
    ``outage_s`` before it tries Redis again, so an outage costs one slow call per
    ``outage_s`` rather than one per request. The limit then holds per process rather
    than across them (a fallback, not failing open entirely: a client still cannot flood
    one process). ``availability`` logs the outage once and its end once.
    """

    def __init__(
        self,
        redis_client: redis_asyncio.Redis,
        limit_per_s: int,
        prefix: str = "coalition:rl:",
        *,
        clock: Clock = time.time,
        fail_open: bool = True,
        outage_s: float = 5.0,
        window_s: int = 1,
        availability: Availability | None = None,
    ) -> None:
        _check_limit(limit_per_s, window_s)
        self.redis = redis_client
        self.limit_per_s = limit_per_s
        self.window_s = window_s
        self.prefix = prefix
        self.fail_open = fail_open
        self.outage_s = outage_s
        self._clock = clock
        self._fallback = InProcessRateLimiter(limit_per_s, window_s=window_s, clock=clock)
        self.availability = availability or Availability("redis", probe_interval_s=outage_s, clock=clock)

    async def hit(self, key: str) -> float | None:
        now = self._clock()
        try:
            # Down (found so by this limiter or another user of the same Redis): counted in process,
            # but for one caller per probe interval, who tries Redis again.
            self.availability.check()
        except Unavailable:
            return await self._fallback.hit(key)
        window = int(now // self.window_s)
        counter = f"{self.prefix}{key}:{window}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(counter)
                # A second more than the window: clocks of API processes differ a little.
                pipe.expire(counter, self.window_s + 1)
                count, _ = await pipe.execute()
        except RedisError as error:
            self._redis_failed(error)
            return await self._fallback.hit(key)
        self.availability.succeeded()
        if int(count) > self.limit_per_s:
            return (window + 1) * self.window_s - now
        return None

    async def retry_after(self, key: str) -> float | None:
        now = self._clock()
        try:
            self.availability.check()
        except Unavailable:
            return await self._fallback.retry_after(key)
        window = int(now // self.window_s)
        try:
            count = await self.redis.get(f"{self.prefix}{key}:{window}")
        except RedisError as error:
            self._redis_failed(error)
            return await self._fallback.retry_after(key)
        self.availability.succeeded()  # a probe may have been this call: its answer ends the outage
        if count is not None and int(count) >= self.limit_per_s:
            return (window + 1) * self.window_s - now
        return None

    def _redis_failed(self, error: RedisError) -> None:
        if not self.fail_open:
            raise error
        # One line per outage (the tracker's); while it lasts, limits are counted in process.
        self.availability.failed(error)

    def companion(self, limit: int, *, window_s: int, prefix: str) -> RateLimiter:
        # The same client: closing this limiter (the application's) closes the companion's connection too.
        return RedisRateLimiter(self.redis, limit, prefix, clock=self._clock, fail_open=self.fail_open,
                                outage_s=self.outage_s, window_s=window_s, availability=self.availability)

    async def aclose(self) -> None:
        await self.redis.aclose()

    def __repr__(self) -> str:
        window = f", window_s={self.window_s!r}" if self.window_s != 1 else ""
        return f"{type(self).__name__}(limit_per_s={self.limit_per_s!r}{window}, prefix={self.prefix!r})"


def make_rate_limiter(redis_url: str | None, limit_per_s: int, *, timeout_s: float = 0.5, health_check_s: int = 30,
                      availability: Availability | None = None) -> RateLimiter:
    """A Redis limiter when ``redis_url`` is given (production), else an in-process one."""
    if redis_url:
        # Short timeouts: a hung Redis must not hang requests (the limiter then counts in process).
        client = redis_asyncio.Redis.from_url(redis_url, socket_timeout=timeout_s or None,
                                              socket_connect_timeout=timeout_s or None,
                                              health_check_interval=health_check_s)
        return RedisRateLimiter(client, limit_per_s, availability=availability)
    return InProcessRateLimiter(limit_per_s)
