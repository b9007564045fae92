"""Engine, connections and the declarative base.

One :class:`Database` per process. Writes go through :meth:`Database.transaction`; on
SQLite it starts with ``BEGIN IMMEDIATE`` so that two writers queue on the database lock
instead of failing with ``database is locked`` when a read transaction upgrades.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, ClassVar, Self

import asyncpg
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, TypeDecorator, event, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.orm.attributes import manager_of_class
from sqlalchemy.util import greenlet_spawn

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None and dialect.name == "sqlite":
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {int: BigInteger(), dt.datetime: UTCDateTime(), str: String()}

    @classmethod
    def from_values(cls, **values: Any) -> Self:
        """An object holding values already in the database (a RETURNING row, what a write just wrote).

        Built the way the ORM builds the rows a query loads: no constructor, no change events,
        about 20 times cheaper than ``cls(**values)``, which the ledger's results felt under load.
        Such an object is a result to read, never one to add to a session.
        """
        manager = manager_of_class(cls)
        if unknown := values.keys() - manager.keys():
            raise TypeError(f"{cls.__name__} has no attributes {sorted(unknown)}")
        obj = manager.new_instance()
        obj.__dict__.update(values)
        return obj


# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
intpk = Annotated[int, mapped_column(BigIntPK, primary_key=True)]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (see on_begin); aiosqlite would emit a deferred one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("coalition_read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The process's engine plus the three ways to use it."""

    def __init__(self, url: str, *, pool_size: int = 32, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # LIFO: the connection returned last is handed out next, so under any load but the
        # heaviest the same few connections do the work, with their prepared statements and
        # plans warm (PostgreSQL plans a statement anew on each connection), and the rest idle.
        # hide_parameters: a database error's message (and so a log line) never quotes the
        # values of a statement, which can be contact data, keys or idempotency keys.
        kwargs: dict[str, Any] = {"echo": echo, "pool_use_lifo": True, "hide_parameters": True}
        if self.is_sqlite:
            if ":memory:" in url or url.endswith("://"):
                raise ValueError("use a file for SQLite: the ledger needs several connections")
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
        self.engine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: commits on success, rolls back on any exception."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection (deferred transaction on SQLite)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(coalition_read_only=True)
            yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session for admin and reporting work (reads by default)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(coalition_read_only=True)
            async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                yield session

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection with no transaction open: each statement commits on its own.

        PostgreSQL only; for the ledger's one-statement writes (``coalition.ledger.fastpath``),
        which need none of SQLAlchemy's statement handling. A connection that failed other
        than by PostgreSQL refusing a statement (lost, closed, cancelled mid-statement) is
        dropped from the pool rather than handed out again.
        """
        pooled = await self.engine.raw_connection()
        conn = pooled.driver_connection
        assert conn is not None, "a pooled connection that is not closed has a driver connection"
        try:
            yield conn
        except asyncpg.PostgresError as exc:
            if conn.is_closed():
                pooled.invalidate(exc)
            raise
        except BaseException as exc:
            pooled.invalidate(exc if isinstance(exc, Exception) else None)
            raise
        finally:
            await greenlet_spawn(pooled.close)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
