"""Live subscriptions over graphql-transport-ws on /graphql: the protocol, who gets what, the limits,
nothing left behind by clients that go away; across two API processes through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import tracemalloc
from typing import Any

import httpx
import pytest
import websockets
from live_servers import api_process, live, serving
from planted_network import forget_cached_insights

from coalition.auth.service import revoke_api_key
from coalition.config import Settings

TRANSACTIONS = "subscription { transactions { id kind points merchant { name } member { loyaltyId } } }"
EARN = """mutation($lid: String!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: 1000, idempotencyKey: $key}) {
    transaction { id } userErrors { code } } }"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, ws_max_subscriptions=2)


async def earn(address: str, api_key: str, loyalty_id: str, key: str) -> str:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        response = await client.post("/graphql", json={"query": EARN, "variables": {"lid": loyalty_id, "key": key}},
                                     headers={"Authorization": f"Bearer {api_key}"})
    body = response.json()["data"]["earnPoints"]
    assert body["userErrors"] == [], body
    return str(body["transaction"]["id"])


async def test_each_caller_gets_its_own_transactions_live(
    app: Any, admin_key: str, make_merchant: Any, make_member: Any,
) -> None:
    a, b = await make_merchant("A"), await make_merchant("B")
    alice, bob = await make_member(a.merchant.id), await make_member(b.merchant.id)
    async with serving(app) as address, live(address) as to_a, live(address) as to_b, \
            live(address) as to_alice, live(address) as to_admin:
        for client, key in ((to_a, a.api_key), (to_b, b.api_key), (to_alice, alice.member_token),
                            (to_admin, admin_key)):
            assert (await client.init(key)) == {"type": "connection_ack"}
            await client.subscribe("t", TRANSACTIONS)
        await asyncio.sleep(0.2)  # (the subscriptions are registered when subscribe is handled)
        at_a = await earn(address, a.api_key, alice.member.loyalty_id, "e1")
        at_b = await earn(address, b.api_key, bob.member.loyalty_id, "e2")
        got_a, got_b = await to_a.receive(), await to_b.receive()
        assert got_a["type"] == "next" and got_a["id"] == "t"
        assert got_a["payload"]["data"]["transactions"]["id"] == at_a
        assert got_a["payload"]["data"]["transactions"]["kind"] == "EARN"
        assert got_a["payload"]["data"]["transactions"]["member"]["loyaltyId"] == alice.member.loyalty_id
        assert got_b["payload"]["data"]["transactions"]["id"] == at_b
        assert (await to_alice.receive())["payload"]["data"]["transactions"]["id"] == at_a
        assert {(await to_admin.receive())["payload"]["data"]["transactions"]["id"] for _ in range(2)} == {at_a, at_b}
        # nobody got anyone else's
        for client in (to_a, to_b, to_alice, to_admin):
            with pytest.raises(TimeoutError):
                await client.receive(timeout_s=0.3)
        # complete ends one subscription; ping gets pong
        await to_a.send({"id": "t", "type": "complete"})
        await to_a.send({"type": "ping"})
        assert await to_a.receive() == {"type": "pong"}
        await earn(address, a.api_key, alice.member.loyalty_id, "e3")
        with pytest.raises(TimeoutError):
            await to_a.receive(timeout_s=0.3)


async def test_the_protocol_close_codes_and_limits(app: Any, admin_key: str, make_merchant: Any) -> None:
    shop = await make_merchant()
    async with serving(app) as address:
        async with live(address, subprotocol=False) as client:
            assert await client.closed_with() == 4406
        async with live(address) as client:
            await client.subscribe("1", TRANSACTIONS)  # before connection_init
            assert await client.closed_with() == 4401
        async with live(address) as client:
            await client.send({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})
            assert await client.closed_with() == 4403
        async with live(address) as client:
            await client.send({"type": "connection_init", "payload": {}})  # no credential
            assert await client.closed_with() == 4403
        async with live(address) as client:
            assert (await client.init(shop.api_key))["type"] == "connection_ack"
            await client.send({"type": "connection_init", "payload": {}})
            assert await client.closed_with() == 4429
        async with live(address) as client:
            await client.init(shop.api_key)
            await client.ws.send("{not json")
            assert await client.closed_with() == 4400
        async with live(address) as client:
            await client.init(shop.api_key)
            await client.subscribe("1", TRANSACTIONS)
            await client.subscribe("1", TRANSACTIONS)
            assert await client.closed_with() == 4409
        async with live(address) as client:
            await client.init(shop.api_key)
            # queries and mutations go over HTTP; an invalid document is an error for its id
            await client.subscribe("q", "{ network { name } }")
            assert (await client.receive())["payload"][0]["extensions"]["code"] == "OPERATION_NOT_SUPPORTED"
            await client.subscribe("v", "subscription { transactions { nope } }")
            error = await client.receive()
            assert error["type"] == "error" and error["id"] == "v"
            assert error["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
            # the query budget applies to subscribe documents too
            deep = "subscription { transactions { " + "reverses { " * 40 + "id" + " }" * 40 + " } }"
            await client.subscribe("deep", deep)
            refused = await client.receive()
            assert refused["type"] == "error" and refused["id"] == "deep"
            assert refused["payload"][0]["extensions"]["code"].startswith("QUERY_")
            # at most two subscriptions on this connection (the settings above)
            await client.subscribe("1", TRANSACTIONS)
            await client.subscribe("2", TRANSACTIONS)
            await client.subscribe("3", TRANSACTIONS)
            third = await client.receive()
            assert third["id"] == "3" and third["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"


async def test_a_stranger_cannot_keep_an_unauthenticated_socket_open_with_pings(app: Any) -> None:
    # The init timeout counts from the opening: pings (allowed before the init) do not extend it.
    app.state.subscriptions.init_timeout_s = 0.6
    async with serving(app) as address, live(address) as stranger:
        opened = asyncio.get_running_loop().time()
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(20):
                await stranger.send({"type": "ping"})
                assert await stranger.receive() == {"type": "pong"}
                await asyncio.sleep(0.2)
        assert await stranger.closed_with() == 4408
        assert asyncio.get_running_loop().time() - opened < 2.0
        assert app.state.subscriptions.open_connections == 0


async def test_a_stranger_opening_many_sockets_is_rate_limited_per_address(db: Any, settings: Settings) -> None:
    # Each WebSocket handshake without a credential counts against the address's budget, as an HTTP
    # request does; and each one lives at most the init timeout (above).
    from coalition.app import create_app

    await forget_cached_insights(settings.redis_url)  # the per-address counters of earlier tests
    app = create_app(dataclasses.replace(settings, rate_limit_per_s=5))
    opened = refused = 0
    async with serving(app) as address:
        started = asyncio.get_running_loop().time()
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(30):
                try:
                    client = await stack.enter_async_context(live(address))
                    await client.send({"type": "ping"})
                    await client.receive(timeout_s=2)
                    opened += 1
                except (websockets.InvalidStatus, websockets.ConnectionClosed):
                    refused += 1
            elapsed = asyncio.get_running_loop().time() - started
    # at most the budget of 5 a second (and one window's worth more) got through
    assert opened >= 1 and refused >= 1 and opened <= 5 * (elapsed + 2), (opened, refused, elapsed)


async def test_a_key_revoked_mid_stream_closes_the_connection(
    app: Any, db: Any, make_merchant: Any, make_member: Any,
) -> None:
    shop, other = await make_merchant("S"), await make_merchant("O")
    member = await make_member(shop.merchant.id)
    app.state.subscriptions.recheck_s = 0.3
    async with serving(app) as address, live(address) as revoked, live(address) as kept:
        for client, key in ((revoked, shop.api_key), (kept, other.api_key)):
            assert (await client.init(key))["type"] == "connection_ack"
            await client.subscribe("t", TRANSACTIONS)
        await asyncio.sleep(0.8)  # a few rechecks pass while the keys are good
        await earn(address, shop.api_key, member.member.loyalty_id, "before")
        assert (await revoked.receive())["type"] == "next"
        await revoke_api_key(db, shop.api_key)
        assert await revoked.closed_with(timeout_s=5) == 4403
        # the other merchant's connection, whose key is good, stays
        await kept.send({"type": "ping"})
        assert await kept.receive() == {"type": "pong"}
        assert app.state.services.live.subscribers == 1


async def test_a_recheck_that_cannot_be_made_leaves_the_connection_open(app: Any, make_merchant: Any) -> None:
    # The database down at a recheck (503) is not a revoked key: the connection stays, checked again later.
    from coalition.web.auth import AuthRefused

    shop = await make_merchant()
    sockets = app.state.subscriptions
    sockets.recheck_s = 0.2
    checks: list[str] = []

    async with serving(app) as address, live(address) as client:
        assert (await client.init(shop.api_key))["type"] == "connection_ack"
        real = sockets.authenticate

        async def unavailable(conn: Any, authorization: object) -> Any:
            checks.append("503")
            raise AuthRefused(503, "SERVICE_UNAVAILABLE", "credentials cannot be checked right now")

        sockets.authenticate = unavailable
        await asyncio.sleep(0.7)
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"} and len(checks) >= 2
        sockets.authenticate = real


CHURN = int(os.environ.get("COALITION_WS_CHURN", "300"))  # bench/ws_churn.py runs 10,000


async def test_clients_that_go_away_leave_nothing_behind(app: Any, make_merchant: Any) -> None:
    shop = await make_merchant()
    broker, sockets = app.state.services.live, app.state.subscriptions

    async def once(n: int) -> None:
        async with live(address) as client:
            await client.init(shop.api_key)
            await client.subscribe("a", TRANSACTIONS)
            await client.subscribe("b", TRANSACTIONS)
            if n % 2:
                await client.send({"type": "ping"})
                await client.receive()
        # half close politely, half just drop (the context manager closes either way)

    async with serving(app) as address:
        for n in range(20):  # warm up (caches, pools, the first tasks)
            await once(n)
        await asyncio.sleep(0.2)
        gc.collect()
        tasks_before = len(asyncio.all_tasks())
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for n in range(CHURN):
            await once(n)
        await asyncio.sleep(0.3)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        assert broker.subscribers == 0 and sockets.open_connections == 0
        assert len(asyncio.all_tasks()) <= tasks_before
        # flat: under 2 KB a connection kept (caches warm up to a bound: less than that in all)
        assert grown < 2048 * CHURN / 10, f"{grown} bytes more after {CHURN} connections"


@pytest.mark.services
async def test_a_write_on_either_process_reaches_subscribers_on_both(
    settings: Settings, admin_key: str, make_merchant: Any, make_member: Any,
) -> None:
    if settings.redis_url is None or settings.database_url.startswith("sqlite"):
        pytest.skip("two API processes share PostgreSQL and Redis: set COALITION_TEST_DATABASE_URL and _REDIS_URL")
    shop = await make_merchant()
    member = await make_member(shop.merchant.id)
    env = {"COALITION_DATABASE_URL": settings.database_url, "COALITION_REDIS_URL": settings.redis_url,
           "COALITION_SECRET_KEY": "test-secret-key", "COALITION_AUTH_CACHE_S": "0",
           "COALITION_RATE_LIMIT_PER_S": "100000", "COALITION_AUTH_FAILURES_PER_MIN": "100000"}
    with api_process(env) as one, api_process(env) as two:
        async with live(one) as on_one, live(two) as on_two:
            for client in (on_one, on_two):
                assert (await client.init(shop.api_key))["type"] == "connection_ack"
                await client.subscribe("t", TRANSACTIONS)
            await asyncio.sleep(0.5)
            for n, address in enumerate((one, two, one)):
                written = await earn(address, shop.api_key, member.member.loyalty_id, f"k{n}")
                for client in (on_one, on_two):
                    got = await client.receive(timeout_s=10)
                    assert got["payload"]["data"]["transactions"]["id"] == written
