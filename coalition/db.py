"""Engine, connections and the declarative base.

One :class:`Database` per process. Writes go through :meth:`Database.transaction`; on
SQLite it starts with ``BEGIN IMMEDIATE`` so that two writers queue on the database lock
instead of failing with ``database is locked`` when a read transaction upgrades.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Self

import asyncpg
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, TypeDecorator, event, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, configure_mappers, mapped_column
from sqlalchemy.orm.attributes import manager_of_class
from sqlalchemy.util import greenlet_spawn

from coalition.availability import Availability, Unavailable, connection_lost, outage_cause

logger = logging.getLogger("coalition.db")

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
        if not manager.mapper.configured:  # a process whose first use of the model is this
            configure_mappers()
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


def create_private_sqlite_file(url: str) -> None:
    """Create an SQLite database file that does not exist yet with mode 0600 (owner only).

    It holds API-key hashes, encrypted contacts and the whole ledger; SQLite would create it
    with the umask's mode (often world-readable). SQLite gives the -wal and -shm files it
    makes later the database file's mode, so they are private too. An existing file is left
    as it is, as is a file in a folder that does not exist (connecting fails there anyway).
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        # The path as SQLite opens it (SQLite does not expand "~").
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # it exists, or its folder does not, or may not be written: SQLite will say
        return
    os.close(fd)


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


@dataclass(frozen=True)
class Timeouts:
    """How long to wait for PostgreSQL (None: as long as it takes). SQLite ignores them.

    ``connect_s`` bounds opening a connection (TCP, TLS, authentication); ``command_s`` how
    long the client waits for any statement's answer (asyncpg's ``command_timeout``): past
    it the server counts as hung and the connection is dropped. ``statement_s`` is the
    server's ``statement_timeout``: a statement that runs too long is cancelled there and
    the connection stays usable; keep it below ``command_s`` so that a slow statement is
    told apart from a hung server. ``pool_s`` bounds the wait for a pooled connection.
    ``idle_in_transaction_s`` is the server's ``idle_in_transaction_session_timeout``: a
    transaction left open that long between statements (a process frozen mid-request) is
    ended by the server, rolled back, never committed later. With ``statement_s`` it bounds
    how long an API write transaction can hold an entry id before it commits, which the
    dashboard rollup counts on (:mod:`coalition.console.rollup`).
    """

    connect_s: float | None = None
    command_s: float | None = None
    statement_s: float | None = None
    pool_s: float = 30.0
    idle_in_transaction_s: float | None = None

    def connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.connect_s:
            args["timeout"] = self.connect_s
        if self.command_s:
            args["command_timeout"] = self.command_s
        limits = (("statement_timeout", self.statement_s),
                  ("idle_in_transaction_session_timeout", self.idle_in_transaction_s))
        if server := {name: str(max(1, round(seconds * 1000))) for name, seconds in limits if seconds}:
            args["server_settings"] = server
        return args


SLOW_LOG_INTERVAL_S = 10.0


@dataclass(frozen=True)
class Change:
    """A write a transaction made that others react to (webhooks, live subscriptions).

    ``type`` is the event type (``points.earned``); ``data`` holds plain values (ids, not global IDs).
    """

    type: str
    merchant_id: int | None
    member_id: int | None
    created_at: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CommitHooks:
    """What runs around the commit of a :meth:`Database.transaction` that noted changes.

    ``before`` runs inside the transaction, last (the webhooks outbox: same transaction as the
    change); ``after`` once it has committed (live events). ``wants`` says, from a per-process
    cache, whether a merchant has an endpoint for an event type (the one-statement ledger writes
    ask it before they run).
    """

    before: Callable[[AsyncConnection, list[Change]], Awaitable[None]]
    after: Callable[[list[Change]], None]
    wants: Callable[[int, str], Awaitable[bool]]


_changes: ContextVar[list[Change] | None] = ContextVar("coalition_changes", default=None)


def noting_changes() -> bool:
    """Whether the current transaction collects changes (worth a query to describe them)."""
    return _changes.get() is not None


def note_change(change: Callable[[], Change]) -> None:
    """Note a change of the current :meth:`Database.transaction` (built only if anyone listens)."""
    changes = _changes.get()
    if changes is not None:
        changes.append(change())


def _drop_hung_connections(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "handle_error")
    def on_error(context: ExceptionContext) -> None:
        # A statement that timed out (or was cancelled) leaves its connection waiting on the
        # server. SQLAlchemy then drops the connection politely, waiting up to 2 s for a
        # goodbye a hung server never sends; closing the socket first makes that immediate,
        # and marking it a disconnect has every pooled connection replaced (they all lead to
        # the same server).
        error = context.original_exception
        if isinstance(error, TimeoutError) or not isinstance(error, Exception):
            conn = context.connection
            driver = None if conn is None or conn.invalidated else conn.connection.driver_connection
            if driver is not None and hasattr(driver, "terminate"):
                driver.terminate()
            if isinstance(error, TimeoutError):
                context.is_disconnect = True


class Database:
    """The process's engine plus the three ways to use it.

    Every way in first asks :attr:`availability` (:mod:`coalition.availability`): while the
    database is known to be down they raise ``Unavailable`` at once instead of waiting for a
    timeout, and a connection that timed out or broke mid-statement is closed without a
    goodbye (the server may never answer one) and never handed out again.
    """

    def __init__(self, url: str, *, pool_size: int = 32, echo: bool = False,
                 timeouts: Timeouts | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.timeouts = timeouts or Timeouts()
        self.availability = Availability("database")
        self._slow_logged_at = -SLOW_LOG_INTERVAL_S
        self.hooks: CommitHooks | None = None  # coalition.webhooks.install sets them
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
            create_private_sqlite_file(url)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False,
                          pool_timeout=self.timeouts.pool_s or 3600.0, connect_args=self.timeouts.connect_args())
        self.engine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        else:
            _drop_hung_connections(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def _outage(self, error: BaseException, *, connecting: bool = False) -> bool:
        """Note ``error`` with the availability tracker; True when the connection must not be reused.

        A statement the server cancelled (statement_timeout) leaves a good connection and a
        server that answers: no outage, one log line every few seconds at most. One pooled
        connection found broken (reset, closed by a restart or an idle timeout) costs its
        request a 503 but says nothing of the server: the outage starts when a connection
        cannot be opened or a server does not answer in time.
        """
        cause = outage_cause(error)
        if cause is None or isinstance(cause, Unavailable):
            return False
        if connection_lost(cause) and not connecting:
            return True
        if isinstance(cause, asyncpg.QueryCanceledError):
            now = time.monotonic()
            if now - self._slow_logged_at >= SLOW_LOG_INTERVAL_S:
                self._slow_logged_at = now
                logger.warning("a statement ran past statement_timeout (%s s) and was cancelled",
                               self.timeouts.statement_s)
            return False
        self.availability.failed(cause)
        return True

    @staticmethod
    async def _discard(conn: AsyncConnection, error: BaseException) -> None:
        if conn.invalidated or conn.closed:
            return  # SQLAlchemy saw the disconnect itself and has dropped the connection
        # Terminate first: SQLAlchemy's invalidate() would say goodbye and wait for the reply,
        # which a hung server never sends.
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if driver is not None and hasattr(driver, "terminate"):
            driver.terminate()
        await conn.invalidate(error if isinstance(error, Exception) else None)

    @asynccontextmanager
    async def _connection(self, *, gated: bool = True) -> AsyncIterator[AsyncConnection]:
        if gated:
            self.availability.check()
        try:
            conn = await self.engine.connect()
        except Exception as exc:
            self._outage(exc, connecting=True)
            raise
        try:
            yield conn
        except BaseException as exc:
            if self._outage(exc):
                await self._discard(conn, exc)
            raise
        else:
            self.availability.succeeded()
        finally:
            await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: commits on success, rolls back on any exception."""
        hooks = self.hooks
        changes: list[Change] | None = [] if hooks is not None else None
        token = _changes.set(changes)
        try:
            async with self._connection() as conn:
                transaction = await conn.begin()
                try:
                    yield conn
                    # Last in the transaction, so after every row lock it took: the outbox rows of
                    # one member are numbered in the order their transactions commit.
                    if changes and hooks is not None:
                        await hooks.before(conn, changes)
                except BaseException as exc:
                    # Not after an outage: the ROLLBACK would wait for a server that does not
                    # answer; the connection is dropped instead, which ends the transaction.
                    cause = outage_cause(exc)
                    if cause is None or isinstance(cause, Unavailable | asyncpg.QueryCanceledError):
                        await transaction.rollback()
                    raise
                await transaction.commit()
        finally:
            _changes.reset(token)
        if changes and hooks is not None:
            hooks.after(changes)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection (deferred transaction on SQLite)."""
        async with self._connection() as conn:
            conn = await conn.execution_options(coalition_read_only=True)
            yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session for admin and reporting work (reads by default)."""
        async with self._connection() as conn:
            conn = await conn.execution_options(coalition_read_only=True)
            async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                yield session

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection with no transaction open: each statement commits on its own.

        PostgreSQL only; for the ledger's one-statement writes (``coalition.ledger.fastpath``),
        which need none of SQLAlchemy's statement handling. A connection that failed other
        than by PostgreSQL refusing a statement (lost, closed, timed out, cancelled
        mid-statement) is dropped from the pool rather than handed out again.
        """
        self.availability.check()
        try:
            pooled = await self.engine.raw_connection()
        except Exception as exc:
            self._outage(exc, connecting=True)
            raise
        conn = pooled.driver_connection
        assert conn is not None, "a pooled connection that is not closed has a driver connection"
        try:
            yield conn
        except asyncpg.PostgresError as exc:
            if self._outage(exc) or conn.is_closed():
                conn.terminate()
                pooled.invalidate(exc)
            raise
        except BaseException as exc:
            self._outage(exc)
            conn.terminate()
            pooled.invalidate(exc if isinstance(exc, Exception) else None)
            raise
        else:
            self.availability.succeeded()
        finally:
            await greenlet_spawn(pooled.close)

    async def ping(self) -> None:
        """One ``SELECT 1``, tried even while the database is known to be down (readiness probes)."""
        async with self._connection(gated=False) as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
