"""The live broker's Redis channel is its database's own (coalition.live.broker)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio.connection import parse_url

from coalition.config import Settings
from coalition.db import Change
from coalition.live.broker import CHANNEL, Broker

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def url_with_db(redis_url: str, db: int) -> str:
    return urlsplit(redis_url)._replace(path=f"/{db}").geturl()


def earned(entry_id: int) -> Change:
    return Change("points.earned", merchant_id=1, member_id=2, created_at=NOW, data={"entry_id": entry_id})


async def test_the_channel_names_the_redis_database() -> None:
    brokers = [Broker("redis://127.0.0.1:6379/6"), Broker("redis://127.0.0.1:6379/7"),
               Broker("redis://127.0.0.1:6379/6"), Broker("redis://127.0.0.1:6379"), Broker(None)]
    try:
        assert [b.channel for b in brokers] == [f"{CHANNEL}:db6", f"{CHANNEL}:db7", f"{CHANNEL}:db6",
                                                f"{CHANNEL}:db0", CHANNEL]
    finally:
        for broker in brokers:
            await broker.aclose()


@pytest.fixture
async def brokers(settings: Settings) -> AsyncIterator[tuple[Broker, Broker, Broker]]:
    """Two brokers on the test Redis database and one on the next database number."""
    redis_url = settings.redis_url
    if redis_url is None:
        pytest.skip("needs Redis: set COALITION_TEST_REDIS_URL")
    db = int(parse_url(redis_url).get("db", 0))
    made = (Broker(redis_url), Broker(redis_url), Broker(url_with_db(redis_url, (db + 1) % 16)))
    try:
        yield made
    finally:
        for broker in made:
            await broker.aclose()


async def test_events_stay_within_their_redis_database(brokers: tuple[Broker, Broker, Broker]) -> None:
    # given subscribers through two brokers on one database and one on another database number
    _, also_here, elsewhere = brokers
    streams = [broker.open(merchant_id=None, member_id=None) for broker in brokers]
    for broker in brokers:
        await broker.ready()

    # when each database's deployment publishes an event
    also_here.publish([earned(1)])
    elsewhere.publish([earned(2)])

    # then each subscriber gets its own database's event, and the other database's never
    got = [await asyncio.wait_for(anext(stream), 10) for stream in streams]
    assert [event["entry_id"] for event in got] == [1, 1, 2]
    also_here.publish([earned(3)])  # a later event of its own arrives first: nothing else was queued before it
    elsewhere.publish([earned(4)])
    got = [await asyncio.wait_for(anext(stream), 10) for stream in streams]
    assert [event["entry_id"] for event in got] == [3, 3, 4]
