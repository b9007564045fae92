"""The process's database handle: how its pool hands out connections."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import Database


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
