"""A transaction that writes entries for minutes (an import, a bulk load) says so with a lock.

The console dashboard's rollup (:mod:`coalition.console.rollup`) notes the largest entry id it
sees and adds the entries up to it :data:`~coalition.console.rollup.GRACE` later, trusting that
every transaction that held a smaller id then has ended by that time. The ledger's own
transactions last milliseconds; an import's lasts as long as its file. Such a transaction
calls :func:`announce_long_write` first: on PostgreSQL it holds :data:`LONG_WRITE_LOCK` shared
until it ends, and the rollup takes the same lock exclusively, without waiting, before it looks
(``pg_try_advisory_xact_lock``), so it never notes an id while a long write is in flight.
SQLite needs nothing: one writer at a time, and a new row's id is the largest committed one
plus one, so an id a reader has seen is never below an uncommitted one.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

LONG_WRITE_LOCK = int.from_bytes(b"LWRT", "big")  # pg_advisory_xact_lock key ("LWRT" in ASCII)


async def announce_long_write(conn: AsyncConnection) -> None:
    """Hold the long-write lock shared until ``conn``'s transaction ends (PostgreSQL; call it first)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": LONG_WRITE_LOCK})
