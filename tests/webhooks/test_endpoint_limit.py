"""At most MAX_ENDPOINTS live webhook endpoints per owner (a merchant, or the admin), also when
registrations race, and a retry with the same key is never refused by the limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from coalition.db import Database
from coalition.webhooks.errors import TooManyEndpoints
from coalition.webhooks.models import WebhookEndpoint
from coalition.webhooks.service import MAX_ENDPOINTS, Registration, create_endpoint, delete_endpoint

ALLOWED = frozenset({"127.0.0.1"})
URL = "http://127.0.0.1:9/hook"


async def register(db: Database, keys: Any, owner: int | None, key: str, url: str = URL) -> Registration:
    return await create_endpoint(db, keys, merchant_id=owner, url=url, events=["points.earned"], idempotency_key=key,
                                 allowed_hosts=ALLOWED)


async def live_endpoints(db: Database, owner: int | None) -> int:
    owner_name = "admin" if owner is None else f"merchant:{owner}"
    async with db.read() as conn:
        return int((await conn.execute(select(func.count(WebhookEndpoint.id)).where(
            WebhookEndpoint.owner == owner_name, WebhookEndpoint.deleted_at.is_(None)))).scalar_one())


@contextlib.asynccontextmanager
async def inserts_held(db: Database, *, waiting: int, timeout_s: float = 30) -> AsyncIterator[None]:
    """PostgreSQL: no row goes into webhook_endpoints (a SHARE lock on the table) until ``waiting``
    sessions of this database wait for a lock, once the body has started them. SQLite: no hold
    (its writers queue at BEGIN IMMEDIATE)."""
    if db.is_sqlite:
        yield
        return
    async with db.transaction() as gate:
        await gate.execute(text(f"LOCK TABLE {WebhookEndpoint.__tablename__} IN SHARE MODE"))
        yield
        deadline = asyncio.get_running_loop().time() + timeout_s
        # (pg_stat_activity is read once per transaction unless its snapshot is cleared)
        while (await gate.execute(text("SELECT pg_stat_clear_snapshot(), count(*) FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND wait_event_type = 'Lock'"))).one()[1] \
                < waiting:
            assert asyncio.get_running_loop().time() < deadline, f"fewer than {waiting} sessions came to wait"
            await asyncio.sleep(0.02)


async def test_an_owner_has_at_most_ten_live_endpoints(db: Database, keys: Any, make_merchant: Any) -> None:
    # given a merchant with the most endpoints it may have, and another merchant with none
    shop, other = (await make_merchant("Shop")).merchant, (await make_merchant("Other")).merchant
    first = [await register(db, keys, shop.id, f"k{i}") for i in range(MAX_ENDPOINTS)]

    # when it registers one more, it is refused, and nothing is written
    with pytest.raises(TooManyEndpoints) as refused:
        await register(db, keys, shop.id, "one-too-many")
    assert refused.value.code == "TOO_MANY_ENDPOINTS" and "delete one first" in refused.value.message
    assert await live_endpoints(db, shop.id) == MAX_ENDPOINTS

    # a retry of a registration it made is answered (the same endpoint and secret), not refused
    again = await register(db, keys, shop.id, "k3")
    assert (again.endpoint.id, again.secret) == (first[3].endpoint.id, first[3].secret)

    # another merchant's count is its own
    await register(db, keys, other.id, "k0")
    assert await live_endpoints(db, other.id) == 1

    # and a deleted endpoint frees its place
    await delete_endpoint(db, shop.id, first[0].endpoint.id)
    await register(db, keys, shop.id, "after-delete")
    assert await live_endpoints(db, shop.id) == MAX_ENDPOINTS


@pytest.mark.parametrize("admin", [False, True], ids=["merchant", "admin"])
async def test_racing_registrations_stop_at_the_limit(db: Database, keys: Any, make_merchant: Any,
                                                      admin: bool) -> None:
    # given an owner one endpoint short of the limit
    owner = None if admin else (await make_merchant()).merchant.id
    for i in range(MAX_ENDPOINTS - 1):
        await register(db, keys, owner, f"k{i}")

    # when eight registrations with different keys race (on PostgreSQL each is held at its insert,
    # so that without a lock every count would run before any insert commits)
    async with inserts_held(db, waiting=8):
        racers = [asyncio.create_task(register(db, keys, owner, f"race-{i}")) for i in range(8)]
    results = await asyncio.gather(*racers, return_exceptions=True)

    # then exactly one is made, the others are refused with the limit's error, and the owner has ten
    made = [r for r in results if isinstance(r, Registration)]
    refused = [r for r in results if isinstance(r, TooManyEndpoints)]
    assert (len(made), len(refused)) == (1, 7), results
    assert await live_endpoints(db, owner) == MAX_ENDPOINTS


async def test_racing_retries_of_one_registration_make_one_endpoint(db: Database, keys: Any,
                                                                    make_merchant: Any) -> None:
    # given a merchant, when six calls with one key and one input race
    shop = (await make_merchant()).merchant
    results = await asyncio.gather(*(register(db, keys, shop.id, "same") for _ in range(6)), return_exceptions=True)

    # then each gets the one endpoint and its secret, and one endpoint exists
    assert all(isinstance(r, Registration) for r in results), results
    assert len({(r.endpoint.id, r.secret) for r in results if isinstance(r, Registration)}) == 1
    assert await live_endpoints(db, shop.id) == 1
