"""Fixed one-second windows, in process and shared through Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from coalition.ratelimit import InProcessRateLimiter, RedisRateLimiter, make_rate_limiter

REDIS_URL = os.environ.get("COALITION_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="set COALITION_TEST_REDIS_URL to run Redis tests")


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_in_process_allows_the_limit_then_refuses_until_the_next_second() -> None:
    clock = FakeClock(1_000.25)
    limiter = InProcessRateLimiter(3, clock=clock)

    assert [await limiter.hit("key-a") for _ in range(3)] == [None, None, None]
    assert await limiter.hit("key-a") == pytest.approx(0.75)
    assert await limiter.hit("key-b") is None  # keys are counted apart
    clock.now = 1_000.9
    assert await limiter.hit("key-a") == pytest.approx(0.1)
    clock.now = 1_001.0
    assert await limiter.hit("key-a") is None


async def test_in_process_forgets_old_windows() -> None:
    clock = FakeClock(50.0)
    limiter = InProcessRateLimiter(1, clock=clock)
    for index in range(1_000):
        await limiter.hit(f"key-{index}")

    clock.now = 51.0
    await limiter.hit("key-0")

    assert limiter._counts == {"key-0": 1}


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit_per_s must be at least 1"):
        InProcessRateLimiter(0)


async def test_make_rate_limiter_without_redis_is_in_process() -> None:
    limiter = make_rate_limiter(None, 5)

    assert isinstance(limiter, InProcessRateLimiter)
    assert repr(limiter) == "InProcessRateLimiter(limit_per_s=5)"
    await limiter.aclose()


async def test_redis_limiter_counts_in_process_while_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(4_000.0)
    client = redis_asyncio.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    limiter = RedisRateLimiter(client, 2, clock=clock, outage_s=5.0)

    assert await limiter.hit("key") is None
    assert await limiter.hit("key") is None  # from the in-process fallback, Redis not tried
    assert await limiter.hit("key") == pytest.approx(1.0)
    clock.now += 6.0  # past outage_s: Redis is tried again, fails again, and that is not logged again
    assert await limiter.hit("key") is None
    assert [record.getMessage() for record in caplog.records] == ["redis unavailable: ConnectionError"]
    await limiter.aclose()


async def test_redis_limiter_can_fail_closed() -> None:
    client = redis_asyncio.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    limiter = RedisRateLimiter(client, 2, fail_open=False)

    with pytest.raises(RedisError):
        await limiter.hit("key")
    await limiter.aclose()


@pytest.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    assert REDIS_URL is not None
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"coalition:test:rl:{uuid.uuid4().hex}:"


@needs_redis
async def test_redis_limiter_counts_per_window(redis_client: redis_asyncio.Redis, prefix: str) -> None:
    clock = FakeClock(2_000.5)
    limiter = RedisRateLimiter(redis_client, 2, prefix, clock=clock)

    assert [await limiter.hit("key") for _ in range(2)] == [None, None]
    assert await limiter.hit("key") == pytest.approx(0.5)
    clock.now = 2_001.0
    assert await limiter.hit("key") is None
    assert 0 < await redis_client.ttl(f"{prefix}key:2001") <= 2


@needs_redis
async def test_two_processes_share_one_limit_through_redis(prefix: str) -> None:
    assert REDIS_URL is not None
    clock = FakeClock(3_000.0)
    # Two limiters with their own connections stand for two API processes.
    first = RedisRateLimiter(redis_asyncio.Redis.from_url(REDIS_URL), 4, prefix, clock=clock)
    second = RedisRateLimiter(redis_asyncio.Redis.from_url(REDIS_URL), 4, prefix, clock=clock)
    try:
        results = [await (first if index % 2 else second).hit("shared") for index in range(4)]
        assert results == [None] * 4
        assert await first.hit("shared") == pytest.approx(1.0)
        assert await second.hit("shared") == pytest.approx(1.0)
        assert await second.hit("someone-else") is None
    finally:
        await first.aclose()
        await second.aclose()


@needs_redis
async def test_make_rate_limiter_with_redis_url() -> None:
    assert REDIS_URL is not None
    limiter = make_rate_limiter(REDIS_URL, 1)
    key = uuid.uuid4().hex

    assert isinstance(limiter, RedisRateLimiter)
    assert await limiter.hit(key) is None
    retry_after = await limiter.hit(key)
    assert retry_after is not None and 0 < retry_after <= 1
    await limiter.aclose()


async def test_a_minute_window_and_asking_without_counting() -> None:
    clock = FakeClock(6_030.0)  # half way through a minute
    requests = InProcessRateLimiter(100, clock=clock)
    failures = requests.companion(2, window_s=60, prefix="fail:")

    assert await failures.retry_after("ip:a") is None
    assert [await failures.hit("ip:a") for _ in range(2)] == [None, None]
    assert await failures.retry_after("ip:a") == pytest.approx(30.0)  # the budget is used up
    assert await failures.retry_after("ip:a") == pytest.approx(30.0)  # asking counts nothing
    assert await failures.hit("ip:a") == pytest.approx(30.0)
    assert await failures.retry_after("ip:b") is None
    assert await requests.hit("ip:a") is None  # the companion counts apart
    clock.now = 6_060.0
    assert await failures.retry_after("ip:a") is None and await failures.hit("ip:a") is None


def test_a_window_must_be_at_least_a_second() -> None:
    with pytest.raises(ValueError, match="window_s must be at least 1"):
        InProcessRateLimiter(5, window_s=0)


@needs_redis
async def test_redis_companion_counts_per_minute_on_the_same_connection(
        redis_client: redis_asyncio.Redis, prefix: str) -> None:
    clock = FakeClock(12_045.0)
    requests = RedisRateLimiter(redis_client, 100, prefix, clock=clock)
    failures = requests.companion(2, window_s=60, prefix=f"{prefix}fail:")
    assert isinstance(failures, RedisRateLimiter) and failures.redis is redis_client

    assert [await failures.hit("ip:a") for _ in range(2)] == [None, None]
    assert await failures.retry_after("ip:a") == pytest.approx(15.0)
    assert await failures.hit("ip:a") == pytest.approx(15.0)
    assert await failures.retry_after("ip:b") is None
    assert 0 < await redis_client.ttl(f"{prefix}fail:ip:a:{12_045 // 60}") <= 61
    clock.now = 12_060.0
    assert await failures.retry_after("ip:a") is None
