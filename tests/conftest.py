"""Fixtures shared by every test.

The same tests run on the embedded default (SQLite in a temporary file, in-process
limits) and on PostgreSQL + Redis when ``COALITION_TEST_DATABASE_URL`` and
``COALITION_TEST_REDIS_URL`` are set (``make test-services`` sets them).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from coalition.config import Settings, load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.service import Ledger
from coalition.members.credentials import claim_member_access
from coalition.members.service import enroll_member
from coalition.models import Base
from coalition.partners.service import onboard_merchant

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("COALITION_TEST_REDIS_URL")
_schema_ready: set[str] = set()


def pytest_report_header(config: pytest.Config) -> str:
    return f"coalition database: {PG_URL or 'SQLite (temporary file)'}; redis: {REDIS_URL or 'none (in-process)'}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    env = {
        "COALITION_DATABASE_URL": PG_URL or f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        "COALITION_SECRET_KEY": "test-secret-key",
        "COALITION_RATE_LIMIT_PER_S": "100000",
        # Tests send bad keys on purpose from one address (shared through Redis across tests):
        # the failure budget has tests of its own, which set it.
        "COALITION_AUTH_FAILURES_PER_MIN": "100000",
        # Likewise failed gift card look-ups (tests/giftcards/test_giftcards_guessing.py sets its own budget).
        "COALITION_GIFT_CARD_LOOKUP_FAILURES": "100000",
        "COALITION_AUTH_CACHE_S": "0",
    }
    if REDIS_URL:
        env["COALITION_REDIS_URL"] = REDIS_URL
    return load_settings(env)


async def reset_schema(db: Database) -> None:
    """Empty schema per test: create_all on a fresh SQLite file, TRUNCATE on PostgreSQL."""
    if db.is_sqlite or db.url not in _schema_ready:
        async with db.engine.begin() as conn:
            if not db.is_sqlite:
                await conn.run_sync(Base.metadata.drop_all)
                await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
            await conn.run_sync(Base.metadata.create_all)
        _schema_ready.add(db.url)
        return
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, pool_size=5)
    await reset_schema(database)
    yield database
    await database.dispose()


@pytest.fixture
def keys(settings: Settings) -> NetworkKeys:
    return NetworkKeys.from_settings(settings)


class Clock:
    """A clock tests can move: ``clock.advance(seconds=...)``."""

    def __init__(self) -> None:
        import datetime as dt

        self.now = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> Any:
        return self.now

    def advance(self, **delta: float) -> None:
        import datetime as dt

        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def ledger(db: Database, settings: Settings, clock: Clock) -> AsyncIterator[Ledger]:
    """The ledger service; the invariants are checked after every test that uses it."""
    yield Ledger(db, settings, clock=clock)
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


@pytest.fixture
def make_merchant(db: Database) -> Callable[..., Any]:
    async def make(name: str = "Shop", earn_rate: int = 1, category: str | None = None) -> Any:
        return await onboard_merchant(db, name=name, category=category, earn_rate_points_per_unit=earn_rate)

    return make


@dataclass(frozen=True)
class EnrolledMember:
    """A member enrolled by a merchant whose customer then claimed access (the usual start of a test)."""

    member: Any
    member_token: str
    qr_code: str


async def enroll_and_claim(db: Database, keys: NetworkKeys, *, merchant_id: int, idempotency_key: str,
                           **fields: Any) -> EnrolledMember:
    """Enroll (as the merchant) and exchange the claim code for a token (as the customer)."""
    enrollment = await enroll_member(db, keys, merchant_id=merchant_id, idempotency_key=idempotency_key, **fields)
    assert enrollment.claim is not None, "a replayed enrollment of a claimed member has no claim code"
    claimed = await claim_member_access(db, enrollment.claim.code)
    return EnrolledMember(member=enrollment.member, member_token=claimed.member_token, qr_code=enrollment.qr_code)


@pytest.fixture
def make_member(db: Database, keys: NetworkKeys) -> Callable[..., Any]:
    """``await make_member(merchant_id, email=...)``: an :class:`EnrolledMember` with its token."""
    counter = iter(range(1, 1_000_000))

    async def make(merchant_id: int, **contact: Any) -> EnrolledMember:
        return await enroll_and_claim(db, keys, merchant_id=merchant_id, idempotency_key=f"enroll-{next(counter)}",
                                      **contact)

    return make


class Api:
    """A GraphQL client over the real ASGI app: ``await api.call(QUERY, variables, key=...)``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(self, query: str, variables: dict[str, Any] | None = None, *, key: str | None = None,
                   expect_errors: bool = False) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}},
                                          headers=headers)
        body: dict[str, Any] = response.json()
        if not expect_errors:
            assert response.status_code == 200, body
            assert "errors" not in body, body["errors"]
            return body["data"]  # type: ignore[no-any-return]
        return body


@pytest.fixture
async def app(db: Database, settings: Settings) -> Any:
    from coalition.app import create_app

    application = create_app(settings)
    yield application
    await application.state.limiter.aclose()
    await application.state.services.insights.aclose()
    await application.state.services.db.dispose()


@pytest.fixture
async def api(app: Any) -> AsyncIterator[Api]:
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield Api(client)


@pytest.fixture
async def admin_key(db: Database) -> str:
    from coalition.auth.service import create_admin_key

    return await create_admin_key(db, label="tests")
