"""Outages degrade cleanly: a PostgreSQL of our own is stopped, then paused, under load.

The test runs its own cluster (``initdb``/``pg_ctl`` on a spare port: see
``tests/scratch_servers.py``) and the app in process (httpx over ASGI). A few clients earn
points without pause; meanwhile the cluster is (a) stopped with ``pg_ctl stop -m immediate``
and (b) paused with SIGSTOP to the postmaster and every backend, a hung server whose sockets
stay open. For each: every request is answered within 2 s, either as usual or with 503,
``SERVICE_UNAVAILABLE`` and ``Retry-After``; ``/readyz`` answers 503 within 1 s; the log gets a
line when the outage starts and one when it ends, and no traceback; once the cluster is back
the service recovers by itself within a few seconds, and the ledger's invariants hold.

Skipped only when the PostgreSQL binaries are absent and not under CI (``CI=true``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from scratch_servers import PostgresCluster, pg_binary, postgres_cluster, redis_server

from coalition.auth.models import Role
from coalition.auth.service import create_api_key
from coalition.config import Settings, load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.members.service import enroll_member
from coalition.models import Base
from coalition.partners.service import onboard_merchant

pytestmark = pytest.mark.slow

HAVE_POSTGRES = pg_binary("initdb") is not None and pg_binary("pg_ctl") is not None
if not HAVE_POSTGRES and os.environ.get("CI") != "true":
    pytest.skip("initdb/pg_ctl not found: the outage tests need PostgreSQL's binaries", allow_module_level=True)

EARN = """mutation($lid: String!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: 500, idempotencyKey: $key}) {
    transaction { id points } member { balance } userErrors { code } } }"""
MEMBER = """query($lid: String!) { member(loyaltyId: $lid) { balance } }"""

CLIENTS = 4
ANSWER_WITHIN_S = 2.0
READY_WITHIN_S = 1.0
RECOVER_WITHIN_S = 5.0
GIVE_UP_S = 15.0  # httpx's timeouts do not apply in process: a request that hangs fails the test here


@dataclass
class Answer:
    sent: float
    seconds: float
    status: int
    code: str | None
    retry_after: str | None
    key: str
    client_no: int
    points: int | None  # of the earn, when it went through


@dataclass
class Load:
    """Clients earning points in a loop; every answer is kept with the time it was sent."""

    client: httpx.AsyncClient
    key: str
    loyalty_ids: list[str]
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sequence: int = 0

    async def one(self, client_no: int, key: str | None = None) -> Answer:
        if key is None:
            self.sequence += 1
            key = f"earn-{self.sequence}"
        started = time.monotonic()
        response = await asyncio.wait_for(self.client.post(
            "/graphql", headers={"Authorization": f"Bearer {self.key}"},
            json={"query": EARN, "variables": {"lid": self.loyalty_ids[client_no], "key": key}}), GIVE_UP_S)
        body = response.json()
        code = points = None
        if "errors" in body:
            code = body["errors"][0].get("extensions", {}).get("code")
        elif body["data"]["earnPoints"]["userErrors"]:
            code = body["data"]["earnPoints"]["userErrors"][0]["code"]
        else:
            points = body["data"]["earnPoints"]["transaction"]["points"]
        return Answer(started, time.monotonic() - started, response.status_code, code,
                      response.headers.get("retry-after"), key, client_no, points)

    async def run(self, client_no: int) -> None:
        while not self.stop.is_set():
            self.answers.append(await self.one(client_no))
            await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with postgres_cluster() as running:
        yield running


def outage_settings(database_url: str, tmp_path: Path, redis_url: str | None = None) -> Settings:
    env = {"COALITION_DATABASE_URL": database_url, "COALITION_SECRET_KEY": "outage-test-secret",
           "COALITION_RATE_LIMIT_PER_S": "100000"}
    if redis_url:
        env["COALITION_REDIS_URL"] = redis_url
    return load_settings(env)  # the default timeouts: what is tested is what ships


async def seed(settings: Settings) -> tuple[str, str, list[str]]:
    """An empty schema, one merchant with its key, an admin key, and a member per client."""
    db = Database(settings.database_url, pool_size=2)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        onboarding = await onboard_merchant(db, name="Bakery", category=None, earn_rate_points_per_unit=1)
        async with db.sessions.begin() as session:
            admin = await create_api_key(session, Role.ADMIN)
        keys = NetworkKeys.from_settings(settings)
        loyalty_ids = []
        for n in range(CLIENTS):
            enrolled = await enroll_member(db, keys, merchant_id=onboarding.merchant.id, idempotency_key=f"enroll-{n}")
            loyalty_ids.append(enrolled.member.loyalty_id)
        return onboarding.api_key, admin, loyalty_ids
    finally:
        await db.dispose()


@pytest.fixture
async def app_client(cluster: PostgresCluster, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    from coalition.app import create_app

    if not cluster.running():
        await asyncio.to_thread(cluster.start)
    settings = outage_settings(cluster.url, tmp_path)
    seeded = await seed(settings)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=10) as client:
        yield client, (app, seeded)
        await app.state.services.db.dispose()


async def timed_get(client: httpx.AsyncClient, path: str, **kwargs: Any) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = await asyncio.wait_for(client.get(path, **kwargs), GIVE_UP_S)
    return time.monotonic() - started, response


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def run_outage(
    client: httpx.AsyncClient, seeded: tuple[str, str, list[str]], caplog: pytest.LogCaptureFixture,
    break_db: Callable[[], None], mend_db: Callable[[], None], label: str,
) -> dict[str, Any]:
    """Load, break, check, mend, check: the figures of one outage."""
    key, admin, loyalty_ids = seeded
    load = Load(client, key, loyalty_ids)
    clients = [asyncio.create_task(load.run(n)) for n in range(CLIENTS)]
    try:
        await asyncio.sleep(1.0)
        assert load.answers and all(a.status == 200 and a.code is None for a in load.answers), load.answers[:5]
        caplog.clear()
        broken_at = time.monotonic()
        await asyncio.to_thread(break_db)
        await asyncio.sleep(2.5)  # the outage, under load

        ready_s, ready = await timed_get(client, "/readyz")
        page_s, page = await timed_get(client, "/admin/settlement", headers={"Authorization": f"Bearer {admin}"})

        await asyncio.to_thread(mend_db)
        mended_at = time.monotonic()
        recovered_at = None
        while time.monotonic() - mended_at < RECOVER_WITHIN_S + 5:
            if any(a.sent >= mended_at and a.status == 200 for a in load.answers):
                recovered_at = min(a.sent + a.seconds for a in load.answers if a.sent >= mended_at and a.status == 200)
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
    finally:
        load.stop.set()
        await asyncio.gather(*clients)
    ready_after_s, ready_after = await timed_get(client, "/readyz")

    during = [a for a in load.answers if a.sent + a.seconds >= broken_at and a.sent < mended_at]
    failed = [a for a in during if a.status != 200]
    first_503 = min((a.sent + a.seconds for a in failed if a.status == 503), default=None)
    figures = {
        "requests_during": len(during),
        "statuses_during": dict(sorted(Counter(a.status for a in during).items())),
        "codes_during": sorted({str(a.code) for a in failed}),
        "slowest_answer_s": round(max(a.seconds for a in load.answers), 2),
        "to_first_503_s": None if first_503 is None else round(first_503 - broken_at, 2),
        "readyz": (ready.status_code, round(ready_s, 2)),
        "page": (page.status_code, round(page_s, 2)),
        "to_recovery_s": None if recovered_at is None else round(recovered_at - mended_at, 2),
        "log_lines": [r.getMessage() for r in outage_lines(caplog)],
    }
    print(f"\n{label}: {figures}")

    # Every request answered, none slower than 2 s, each as usual or as a clean 503.
    assert figures["slowest_answer_s"] <= ANSWER_WITHIN_S, figures
    assert failed, f"no request failed during the outage: {figures}"
    for answer in failed:
        assert (answer.status, answer.code) == (503, "SERVICE_UNAVAILABLE"), (answer, figures)
        assert answer.retry_after is not None and int(answer.retry_after) >= 1
    assert (ready.status_code, ready.headers.get("retry-after") is not None) == (503, True)
    assert ready_s <= READY_WITHIN_S, figures
    assert page.status_code == 503, page.text
    assert page.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", page.text
    assert page.headers.get("retry-after") is not None and page_s <= ANSWER_WITHIN_S

    # Back by itself: answers 200 again within a few seconds, and ready.
    assert figures["to_recovery_s"] is not None and figures["to_recovery_s"] <= RECOVER_WITHIN_S, figures
    assert ready_after.status_code == 200 and ready_after_s <= READY_WITHIN_S
    assert all(a.status == 200 for a in load.answers if a.sent >= recovered_at), figures  # type: ignore[operator]

    # Nothing lost, nothing twice: each refused earn, retried with its key, goes through once
    # (or is found done: its statement may have committed before the answer was lost).
    retried = [await load.one(a.client_no, a.key) for a in failed]
    assert [(a.status, a.code) for a in retried] == [(200, None)] * len(retried), retried
    earned = {a.key: a.points for a in [*load.answers, *retried] if a.status == 200}
    assert sum(await balances(client, load)) == sum(p for p in earned.values() if p is not None)

    # The log: the outage's start and its end, no traceback, nothing private.
    records = outage_lines(caplog)
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records if r.exc_info]
    messages = figures["log_lines"]
    assert messages[0].startswith("database unavailable: "), messages
    assert messages[-1].startswith("database available again after "), messages
    assert len(messages) <= 3, messages
    return figures


async def balances(client: httpx.AsyncClient, load: Load) -> list[int]:
    found = []
    for lid in load.loyalty_ids:
        response = await client.post("/graphql", headers={"Authorization": f"Bearer {load.key}"},
                                     json={"query": MEMBER, "variables": {"lid": lid}})
        found.append(response.json()["data"]["member"]["balance"])
    return found


async def check_ledger(settings_url: str) -> None:
    db = Database(settings_url, pool_size=1)
    try:
        async with db.read() as conn:
            await assert_ledger_consistent(conn)
    finally:
        await db.dispose()


async def test_database_stopped_mid_load(
    app_client: tuple[httpx.AsyncClient, Any], cluster: PostgresCluster, caplog: pytest.LogCaptureFixture,
) -> None:
    client, (_app, seeded) = app_client
    caplog.set_level(logging.WARNING)
    await run_outage(client, seeded, caplog, lambda: cluster.stop("immediate"), cluster.start,
                     "pg_ctl stop -m immediate")
    await check_ledger(cluster.url)


async def test_database_hung_mid_load(
    app_client: tuple[httpx.AsyncClient, Any], cluster: PostgresCluster, caplog: pytest.LogCaptureFixture,
) -> None:
    client, (_app, seeded) = app_client
    caplog.set_level(logging.WARNING)
    await run_outage(client, seeded, caplog, cluster.pause, cluster.resume, "SIGSTOP")
    await check_ledger(cluster.url)


async def test_redis_down_degrades_rate_limits_not_requests(
    cluster: PostgresCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis stopped, then hung: requests still succeed (limits counted in process), one log line each way."""
    from coalition.app import create_app

    if not cluster.running():
        await asyncio.to_thread(cluster.start)
    with redis_server() as redis:
        settings = outage_settings(cluster.url, tmp_path, redis.url)
        key, _admin, loyalty_ids = await seed(settings)
        app = create_app(settings)
        caplog.set_level(logging.WARNING)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                     timeout=10) as client:
            load = Load(client, key, loyalty_ids)
            try:
                assert (await load.one(0)).status == 200
                for breaking, mending in ((redis.pause, redis.resume), (redis.stop, redis.start)):
                    caplog.clear()
                    breaking()
                    answers = [await load.one(n % CLIENTS) for n in range(8)]
                    assert [(a.status, a.code) for a in answers] == [(200, None)] * 8, answers
                    assert max(a.seconds for a in answers) <= ANSWER_WITHIN_S, answers
                    mending()
                    # The limiter tries Redis again after its probe interval (5 s).
                    app.state.limiter.availability._next_probe = 0.0
                    assert (await load.one(0)).status == 200
                    messages = [r.getMessage() for r in outage_lines(caplog)]
                    assert not [r for r in outage_lines(caplog) if r.exc_info]
                    assert len(messages) == 2, messages
                    assert messages[0].startswith("redis unavailable: "), messages
                    assert messages[1].startswith("redis available again after "), messages
            finally:
                await app.state.limiter.aclose()
                await app.state.services.insights.aclose()
                await app.state.services.db.dispose()
