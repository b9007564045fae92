"""The one authentication backend: every route learns who calls from here, before its handler runs.

    request ─ credential ─ address over its failure budget? 429 ─ Authenticator ─ bad? count, 401
            ─ rate limit (the caller's key, or the address when anonymous) ─ request.user / request.auth

Credentials, first found wins (:meth:`AuthBackend.credential`):

- ``Authorization: Bearer <key or member token>`` on every route;
- ``Authorization: Basic`` with the key as the password (or the user name when the
  password is empty) on pages only (``/admin/…``, ``/statements/…``), so that a browser can
  open them. Not on ``/graphql``: a browser replays Basic credentials on its own, which a
  cross-site request would ride on;
- browser sessions, on pages only (never ``/graphql``): the ``coalition_session`` cookie of a
  signed-in person (:mod:`coalition.console.service`), or on the wallet (``/me``) the member's
  ``coalition_member`` cookie (a member token from a claim link). The same
  :class:`Authenticator` turns them into a :class:`Caller`; the cookie's value is kept in
  ``scope["session_credential"]`` for the pages' CSRF tokens (:mod:`coalition.web.pages`). A
  cookie that no longer authenticates (expired, signed out) makes the request anonymous, so
  that the browser can reach the sign-in page; 256 random bits are not worth guessing.

A credential that does not authenticate is a 401 and counts against its client address
(``ip:<address>``; IPv6 by /64, what one host usually holds) in a budget of its own,
``auth_failures_per_min``. An address over that budget gets 429 with ``Retry-After`` for
any credential it sends, before the lookup: guessing keys costs the guesser, not the
database. Then every request counts against the request limit, per key for a caller, per
address for anonymous ones, on every route.

Handlers read the caller with :func:`caller_of`; ``request.auth.scopes`` holds
``"authenticated"`` and the role (``"admin"``, ``"merchant"``, ``"member"``), or
``"metrics"`` for the ``COALITION_METRICS_TOKEN`` on ``/metrics``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, BaseUser
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from coalition.auth.service import Authenticator, Caller
from coalition.availability import RETRY_AFTER_S, SERVICE_UNAVAILABLE, outage_cause
from coalition.graphql.errors import INTERNAL_MESSAGE, INTERNAL_SERVER_ERROR
from coalition.graphql.http import APPLICATION_JSON, negotiate
from coalition.ratelimit import RateLimiter
from coalition.web.errors import accepts_basic, error_response, is_page, is_wallet

logger = logging.getLogger("coalition.auth")

GRAPHQL_PATH = "/graphql"
METRICS_PATH = "/metrics"
BAD_CREDENTIAL = "the API key or member token is invalid or revoked"
STAFF_COOKIE = "coalition_session"
MEMBER_COOKIE = "coalition_member"
SESSION_CREDENTIAL = "session_credential"


class CallerUser(BaseUser):
    """``request.user`` for a caller the :class:`Authenticator` knows."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.caller.rate_limit_key

    def __repr__(self) -> str:
        return f"CallerUser({self.caller!r})"


class MetricsScraper(BaseUser):
    """``request.user`` for the metrics token: may read ``/metrics`` and nothing else."""

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return "metrics"


class AuthRefused(AuthenticationError):
    """The backend answers the request itself: 401 (bad credential) or 429 (rate limited)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def __repr__(self) -> str:
        return f"AuthRefused(status={self.status!r}, code={self.code!r}, message={self.message!r})"


def caller_of(conn: HTTPConnection) -> Caller | None:
    """The authenticated caller of a request, or None (anonymous, or the metrics scraper)."""
    user = conn.scope.get("user")
    return user.caller if isinstance(user, CallerUser) else None


def client_address(conn: HTTPConnection) -> str:
    """The address a client's budget is counted under: the IP, or an IPv6 address's /64.

    Behind a reverse proxy this is the proxy, unless uvicorn trusts its ``X-Forwarded-For``
    (``FORWARDED_ALLOW_IPS``; 127.0.0.1 and ::1 by default).
    """
    host = conn.client.host if conn.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _basic_password(value: str) -> str:
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return ""
    return password or user


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds)))}


class AuthBackend(AuthenticationBackend):
    def __init__(self, authenticator: Authenticator, limiter: RateLimiter, failures: RateLimiter, *,
                 metrics_token: str | None = None) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.failures = failures
        self.metrics_token = metrics_token

    def credential(self, conn: HTTPConnection) -> str | None:
        """The credential the request presents ("" for one that cannot be good), or None for none."""
        header = conn.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer":
                return value.strip()
            if scheme.lower() == "basic" and accepts_basic(conn.url.path):
                return _basic_password(value)
            return ""  # another scheme, or Basic where only Bearer is taken: refused like a bad key
        # A browser sends cookies on cross-site requests too: the pages' forms check a CSRF token.
        if is_page(conn.url.path):
            cookie = conn.cookies.get(MEMBER_COOKIE if is_wallet(conn.url.path) else STAFF_COOKIE)
            if cookie:
                conn.scope[SESSION_CREDENTIAL] = cookie
                return cookie
        return None

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        return await self._authenticate(conn, self.credential(conn))

    async def authenticate_init(self, conn: HTTPConnection, authorization: object) -> Caller | None:
        """A WebSocket's ``connection_init`` payload ``{"Authorization": "Bearer ..."}``, checked as a
        request's header is (same lookup, rate limits and failure budget); None without one."""
        credential: str | None = None
        if isinstance(authorization, str):
            scheme, _, value = authorization.partition(" ")
            credential = value.strip() if scheme.lower() == "bearer" else ""
        elif authorization is not None:
            credential = ""
        if credential is not None and self.metrics_token is not None and hmac.compare_digest(
                credential.encode(), self.metrics_token.encode()):
            credential = ""  # the metrics token opens /metrics only
        result = await self._authenticate(conn, credential)
        user = result[1] if result is not None else None
        return user.caller if isinstance(user, CallerUser) else None

    async def _authenticate(self, conn: HTTPConnection,
                            credential: str | None) -> tuple[AuthCredentials, BaseUser] | None:
        address = client_address(conn)
        if credential is None:
            await self._count(f"ip:{address}")
            return None
        blocked = await self.failures.retry_after(f"ip:{address}")
        if blocked is not None:
            raise AuthRefused(429, "RATE_LIMITED", "too many failed credentials from this address; wait before "
                              "trying again", _retry_after(blocked))
        if self.metrics_token is not None and conn.url.path == METRICS_PATH and hmac.compare_digest(
                credential.encode(), self.metrics_token.encode()):
            await self._count("metrics")
            return AuthCredentials(["metrics"]), MetricsScraper()
        caller = await self._look_up(credential)
        if caller is None and conn.scope.get(SESSION_CREDENTIAL):
            conn.scope[SESSION_CREDENTIAL] = None  # a stale cookie: anonymous, to reach the sign-in page
            await self._count(f"ip:{address}")
            return None
        if caller is None:
            over = await self.failures.hit(f"ip:{address}")
            if over is not None:
                raise AuthRefused(429, "RATE_LIMITED", "too many failed credentials from this address; wait "
                                  "before trying again", _retry_after(over))
            raise AuthRefused(401, "UNAUTHENTICATED", BAD_CREDENTIAL)
        await self._count(caller.rate_limit_key)
        return AuthCredentials(["authenticated", caller.role.value.lower()]), CallerUser(caller)

    async def _look_up(self, credential: str) -> Caller | None:
        # Raised here, an error would escape every handler's error mapping (a plain-text 500
        # and a traceback per request): answer it in the one shape instead.
        try:
            return await self.authenticator.authenticate(credential)
        except Exception as error:
            if outage_cause(error) is not None:  # the database is down or hung: its tracker logs that, once
                raise AuthRefused(503, SERVICE_UNAVAILABLE, "credentials cannot be checked right now; retry "
                                  "shortly", {"Retry-After": str(RETRY_AFTER_S)}) from None
            logger.exception("a credential lookup failed")
            raise AuthRefused(500, INTERNAL_SERVER_ERROR, INTERNAL_MESSAGE) from None

    async def _count(self, key: str) -> None:
        retry_after = await self.limiter.hit(key)
        if retry_after is not None:
            raise AuthRefused(429, "RATE_LIMITED", "too many requests for this key; slow down",
                              _retry_after(retry_after))


def on_auth_error(conn: HTTPConnection, error: Exception) -> Response:
    """The response to a refusal: /graphql's media type and body, or the pages' shape."""
    refused = error if isinstance(error, AuthRefused) else AuthRefused(401, "UNAUTHENTICATED", BAD_CREDENTIAL)
    # On /graphql, in the media type GraphQLEndpoint answers a request it refuses before execution.
    media_type = negotiate(conn.headers.get("accept")) or APPLICATION_JSON if conn.url.path == GRAPHQL_PATH else None
    return error_response(conn, refused.status, refused.code, refused.message, refused.headers, media_type=media_type)


def require_scope(scopes: Iterable[str], what: str,
                  endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` for callers holding any of ``scopes``: else 401 (anonymous) or 403."""
    wanted = frozenset(scopes)

    async def guarded(request: Request) -> Response:
        if wanted.isdisjoint(request.auth.scopes):
            if request.user.is_authenticated:
                return error_response(request, 403, "FORBIDDEN", f"{what} is not for this key")
            return error_response(request, 401, "UNAUTHENTICATED", f"{what} needs credentials: "
                                  "Authorization: Bearer <key>")
        return await endpoint(request)

    return guarded
