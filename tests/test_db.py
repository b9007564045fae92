"""The process's database handle and the declarative base: how the pool hands out connections,
how objects are built from values already in the database."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import Database, Timeouts
from coalition.ledger.models import Entry
from coalition.members.models import Member

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")


async def _driver(conn: AsyncConnection) -> Any:
    return (await conn.get_raw_connection()).driver_connection


async def test_the_pool_hands_out_the_connection_returned_last(db: Database) -> None:
    # given two connections checked out at once, the first returned last
    async with db.read() as first:
        first_driver = await _driver(first)
        async with db.read() as second:
            assert await _driver(second) is not first_driver
    # when a third checkout comes, it gets the one returned last (LIFO): the few connections
    # a steady load needs stay warm and the others idle
    async with db.read() as third:
        assert await _driver(third) is first_driver


def test_from_values_builds_an_object_as_a_query_loads_one() -> None:
    # given values a write just returned
    member = Member.from_values(id=7, loyalty_id="ABCD-EFGH-JKLM", balance=120, held=5)
    # then they read back, what was not given reads None, and nothing counts as changed
    assert (member.id, member.loyalty_id, member.balance, member.held) == (7, "ABCD-EFGH-JKLM", 120, 5)
    assert member.owed is None
    state = inspect(member)
    assert state.transient and not state.modified
    assert isinstance(Entry.from_values(id=1, points=3), Entry)


def test_from_values_refuses_a_name_that_is_no_attribute() -> None:
    with pytest.raises(TypeError, match="refrence"):
        Entry.from_values(id=1, refrence="typo")


async def test_an_sqlite_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    # given the usual umask, under which SQLite makes a world-readable file
    old_umask = os.umask(0o022)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'coalition.db'}", pool_size=1)
    try:
        # when it is written (WAL: the -wal and -shm files exist while a connection is open)
        async with database.transaction() as conn:
            await conn.execute(text("CREATE TABLE secrets (value TEXT)"))
            await conn.execute(text("INSERT INTO secrets VALUES ('hash')"))
        async with database.read() as conn:
            await conn.execute(text("SELECT value FROM secrets"))
            files = sorted(tmp_path.iterdir())
            # then the database and its companions are 0600
            assert [f.name for f in files] == ["coalition.db", "coalition.db-shm", "coalition.db-wal"]
            assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == dict.fromkeys(
                ["coalition.db", "coalition.db-shm", "coalition.db-wal"], 0o600)
    finally:
        os.umask(old_umask)
        await database.dispose()


async def test_an_existing_sqlite_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    database = Database(f"sqlite+aiosqlite:///{path}", pool_size=1)
    await database.ping()
    await database.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_the_servers_limits_are_set_on_each_connection() -> None:
    assert Timeouts().connect_args() == {}
    assert Timeouts(statement_s=1.0, idle_in_transaction_s=60.0).connect_args()["server_settings"] == {
        "statement_timeout": "1000", "idle_in_transaction_session_timeout": "60000"}


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's idle transaction limit: set COALITION_TEST_DATABASE_URL")
async def test_a_transaction_left_idle_is_ended_by_the_server_and_never_commits() -> None:
    """A process frozen mid-request cannot commit its write minutes later (the dashboard rollup counts on it)."""
    assert PG_URL is not None
    db = Database(PG_URL, pool_size=1, timeouts=Timeouts(idle_in_transaction_s=0.3))
    try:
        async with db.read() as conn:
            assert (await conn.execute(text("SHOW idle_in_transaction_session_timeout"))).scalar() == "300ms"
        with pytest.raises(DBAPIError):
            async with db.transaction() as conn:
                await conn.execute(text("CREATE TEMPORARY TABLE frozen (n int)"))
                await asyncio.sleep(1.0)  # the server ends the session meanwhile
                await conn.execute(text("INSERT INTO frozen VALUES (1)"))
        async with db.read() as conn:  # the pool hands out a new, working connection
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await db.dispose()
