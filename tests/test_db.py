"""The process's database handle and the declarative base: how the pool hands out connections,
how objects are built from values already in the database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import Database
from coalition.ledger.models import Entry
from coalition.members.models import Member


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
