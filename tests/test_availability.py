"""The availability tracker, what counts as an outage, and the app against a database that is not there.

No PostgreSQL is needed: a port nobody listens on is a database that is down, and a TCP
server that accepts and never answers is one that hangs. ``tests/test_outage.py`` does the
same against a real cluster, stopped and paused under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import GraphQLError
from scratch_servers import spare_port
from sqlalchemy.exc import OperationalError

from coalition.availability import Availability, Unavailable, connection_lost, outage_cause
from coalition.config import load_settings
from coalition.db import Database, Timeouts

EARN = """mutation { earnPoints(input: {loyaltyId: "X", purchaseAmountMinor: 1, idempotencyKey: "k"}) {
  userErrors { code } } }"""


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_when_an_outage_starts_and_one_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    tracker = Availability("database", probe_interval_s=0.5, clock=clock)
    caplog.set_level(logging.INFO, logger="coalition.availability")

    tracker.succeeded()
    tracker.check()
    for _ in range(100):
        tracker.failed(ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('10.0.0.7', 5432)"))
    assert not tracker.available
    clock.now += 12.34
    for _ in range(100):
        tracker.succeeded()

    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable: ConnectionRefusedError", "database available again after 12.3 s"]
    # The exception's message (host, user, parameters) never reaches the log.
    assert "10.0.0.7" not in caplog.text


def test_while_down_one_caller_per_probe_interval_tries_the_others_are_refused_at_once() -> None:
    clock = FakeClock()
    tracker = Availability("database", probe_interval_s=0.5, clock=clock)
    tracker.failed(TimeoutError())

    with pytest.raises(Unavailable):
        tracker.check()
    clock.now += 0.5
    tracker.check()  # the probe goes through
    with pytest.raises(Unavailable):
        tracker.check()  # and the others are refused while it runs
    tracker.succeeded()
    tracker.check()
    tracker.check()


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    TimeoutError(),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 1)"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    Unavailable("database"),
])
def test_what_counts_as_an_outage(error: BaseException) -> None:
    assert outage_cause(error) is error
    # However it is wrapped: by SQLAlchemy, by graphql-core around a resolver, by a re-raise.
    wrapped = OperationalError("SELECT 1", {}, error)  # type: ignore[arg-type]
    assert outage_cause(wrapped) is error
    assert outage_cause(GraphQLError("failed", original_error=wrapped)) is error
    try:
        try:
            raise error
        except BaseException as inner:
            raise RuntimeError("while earning") from inner
    except RuntimeError as outer:
        assert outage_cause(outer) is error


@pytest.mark.parametrize("error", [
    ValueError("bad input"),
    FileNotFoundError(errno.ENOENT, "No such file"),
    PermissionError(errno.EACCES, "denied"),
    asyncpg.UniqueViolationError("duplicate key"),
    GraphQLError("Cannot query field"),
])
def test_what_does_not(error: BaseException) -> None:
    assert outage_cause(error) is None


def test_a_broken_connection_is_told_apart_from_a_server_that_is_gone() -> None:
    assert connection_lost(ConnectionResetError())
    assert connection_lost(asyncpg.ConnectionDoesNotExistError("closed"))
    assert not connection_lost(ConnectionRefusedError())
    assert not connection_lost(TimeoutError())


class SilentServer:
    """Accepts connections and never answers: a hung PostgreSQL, as a client sees one."""

    def __init__(self) -> None:
        self.held: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> SilentServer:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.held.append(writer)

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for writer in self.held:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def url(port: int) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/coalition"


async def test_a_database_that_is_down_fails_fast_after_the_first_try(caplog: pytest.LogCaptureFixture) -> None:
    db = Database(url(spare_port()), pool_size=2, timeouts=Timeouts(connect_s=1.0, command_s=1.0, statement_s=0.5))
    try:
        with pytest.raises(OSError):
            async with db.read():
                pass
        started = time.monotonic()
        for _ in range(50):
            with pytest.raises(Unavailable):
                async with db.transaction():
                    pass
        assert time.monotonic() - started < 0.2
        assert [r.getMessage() for r in caplog.records] == ["database unavailable: ConnectionRefusedError"]
    finally:
        await db.dispose()


async def test_a_hung_database_costs_at_most_the_connect_timeout() -> None:
    server = await SilentServer().start()
    db = Database(url(server.port), pool_size=2, timeouts=Timeouts(connect_s=0.5, command_s=1.0, statement_s=0.5))
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await db.ping()
        assert time.monotonic() - started < 1.0
        assert not db.availability.available
    finally:
        await db.dispose()
        await server.close()


@pytest.fixture
async def unreachable_app(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a database that is down (``down``) or hangs (``hung``)."""
    from coalition.app import create_app

    server = None
    if request.param == "hung":
        server = await SilentServer().start()
        port = server.port
    else:
        port = spare_port()
    settings = load_settings({"COALITION_DATABASE_URL": url(port), "COALITION_SECRET_KEY": "s"})
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client
    await app.state.services.db.dispose()
    if server is not None:
        await server.close()


async def timed(request: Any) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = await asyncio.wait_for(request, 10)
    return time.monotonic() - started, response


@pytest.mark.parametrize("unreachable_app", ["down", "hung"], indirect=True)
async def test_every_route_answers_503_within_2_s_and_the_log_gets_one_line(
    unreachable_app: httpx.AsyncClient, caplog: pytest.LogCaptureFixture,
) -> None:
    client = unreachable_app
    caplog.set_level(logging.WARNING)
    bearer = {"Authorization": "Bearer coa_0123456789abcdef"}

    answers = await asyncio.gather(*(timed(client.post("/graphql", json={"query": EARN}, headers=bearer))
                                     for _ in range(10)))
    answers += await asyncio.gather(*(timed(client.get("/admin/settlement", headers=bearer)) for _ in range(3)))
    ready_s, ready = await timed(client.get("/readyz"))

    for seconds, response in answers:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        assert seconds < 2.0
    graphql_body = answers[0][1].json()
    assert graphql_body == {"errors": [{"message": graphql_body["errors"][0]["message"],
                                        "extensions": {"code": "SERVICE_UNAVAILABLE"}}]}
    assert answers[-1][1].json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert ready.status_code == 503 and ready_s < 1.0
    assert [r.getMessage() for r in caplog.records] in (
        ["database unavailable: ConnectionRefusedError"], ["database unavailable: TimeoutError"])
    assert not any(r.exc_info for r in caplog.records)
