"""Is the database (or Redis) reachable? One log line per change, and 503s while it is not.

An outage shows up as many errors at once: every request in flight fails, and so does every
request that arrives until the service is back. Logging each one buried the log (3,560
tracebacks in 10 s when PostgreSQL stopped), and answering each with a 500 told clients
nothing. Instead :class:`Availability` keeps one state per dependency and logs only when it
changes::

    database unavailable: ConnectionRefusedError
    database available again after 12.3 s

While the database is down, :meth:`Availability.check` refuses at once (``Unavailable``)
rather than letting every request wait for a connect timeout; one request per
``probe_interval_s`` goes through to find out whether it is back (the circuit breaker's
"half open"). The API answers everything that failed this way with 503,
``SERVICE_UNAVAILABLE`` and ``Retry-After`` (:func:`outage_cause` decides what counts).

The log lines name the exception's type only: its message can hold a host name, a user name
or a statement's parameters, none of which belongs in a log an operator pastes anywhere.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

logger = logging.getLogger("coalition.availability")

SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
UNAVAILABLE_MESSAGE = "The service is temporarily unavailable (its database cannot be reached); retry shortly."
RETRY_AFTER_S = 2

# Errors that say the server cannot be reached or does not answer, rather than that it
# refused one statement: the connection is gone, never came, or went quiet.
_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # connect_timeout, command_timeout (asyncio.TimeoutError is TimeoutError)
    socket.gaierror,  # the host name does not resolve
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and "connection was closed in the middle of operation"
    asyncpg.CannotConnectNowError,  # starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # statement_timeout: the server is too slow to answer in time
    PoolTimeoutError,  # every pooled connection is stuck waiting on the server
    RedisConnectionError,
    RedisTimeoutError,
)
# What asyncio's create_connection raises for an unreachable host, sometimes as a bare OSError
# ("Multiple exceptions: ..." with no errno). A file's OSError is not an outage.
_NETWORK_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN,
                             errno.ECONNREFUSED, errno.ETIMEDOUT})


def _is_network_oserror(error: BaseException) -> bool:
    if not isinstance(error, OSError):
        return False
    return error.errno in _NETWORK_ERRNOS or (error.errno is None and str(error).startswith("Multiple exceptions"))


class Unavailable(Exception):
    """Refused without trying: the dependency is known to be down (see :meth:`Availability.check`)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the {name} is unavailable")
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def outage_cause(error: BaseException) -> BaseException | None:
    """The error in ``error``'s chain that says the database is unreachable, or None.

    SQLAlchemy wraps the driver's errors (``DBAPIError.orig``) and graphql-core wraps a
    resolver's (``original_error``); both keep the original as ``__cause__`` or an attribute.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (Unavailable, *_OUTAGE_TYPES)) or _is_network_oserror(current):
            return current
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return current
        for attribute in ("orig", "original_error", "__cause__", "__context__"):
            inner = getattr(current, attribute, None)
            if isinstance(inner, BaseException):
                pending.append(inner)
    return None


def connection_lost(cause: BaseException) -> bool:
    """An outage cause that only says one open connection broke (not that no new one can be had)."""
    return isinstance(cause, ConnectionResetError | BrokenPipeError | ConnectionAbortedError
                      | asyncpg.ConnectionDoesNotExistError) or (
        isinstance(cause, DBAPIError) and cause.connection_invalidated)


def describe(error: BaseException) -> str:
    """The error's type, never its message (see the module docstring)."""
    if isinstance(error, Unavailable):
        return "unavailable"
    return type(error).__name__


class Availability:
    """The up/down state of one dependency, logged once per change."""

    def __init__(
        self,
        name: str,
        *,
        probe_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
    ) -> None:
        self.name = name
        self.probe_interval_s = probe_interval_s
        self._clock = clock
        self._log = log
        self._down_since: float | None = None
        self._next_probe = 0.0

    @property
    def available(self) -> bool:
        return self._down_since is None

    def check(self) -> None:
        """Raise :class:`Unavailable` while down, except for one caller per probe interval.

        That caller tries for real: its success (:meth:`succeeded`) ends the outage.
        """
        if self._down_since is None:
            return
        now = self._clock()
        if now < self._next_probe:
            raise Unavailable(self.name)
        self._next_probe = now + self.probe_interval_s

    def failed(self, cause: BaseException) -> None:
        """The dependency did not answer: log the start of an outage (once)."""
        if isinstance(cause, Unavailable):
            return
        now = self._clock()
        self._next_probe = now + self.probe_interval_s
        if self._down_since is None:
            self._down_since = now
            self._log.warning("%s unavailable: %s", self.name, describe(cause))

    def succeeded(self) -> None:
        """The dependency answered: log the end of an outage (once)."""
        if self._down_since is not None:
            down_s = self._clock() - self._down_since
            self._down_since = None
            self._log.warning("%s available again after %.1f s", self.name, down_s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, available={self.available!r})"
