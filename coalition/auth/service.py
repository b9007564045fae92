"""API keys and member tokens: create, revoke, authenticate.

Keys are random (256 bits) and stored as SHA-256; a lookup by hash is one indexed read.
Authentications are cached in process for ``auth_cache_s`` seconds (default 2): a
revoked key or suspended merchant stops working within that time on every process. When
an entry expires, the requests that arrive while it is looked up again wait for that one
lookup rather than each reading the database (a busy POS sends dozens at once, and each
would take a pooled connection of its own).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coalition.auth.member_tokens import TOKEN_PREFIX, member_id_for_token
from coalition.auth.models import ApiKey, Role
from coalition.config import Settings
from coalition.console.models import StaffRole
from coalition.console.service import SESSION_PREFIX, session_user
from coalition.crypto import hash_secret, new_api_key
from coalition.db import Database, utcnow
from coalition.errors import NotFound

MAX_CREDENTIAL_LENGTH = 200


@dataclass(frozen=True)
class Caller:
    """Who is calling: an admin, one merchant, or one member."""

    role: Role
    key_id: int | None = None
    merchant_id: int | None = None
    member_id: int | None = None
    # A person signed in to the pages (coalition.console): the user, and OWNER, CASHIER or ADMIN.
    user_id: int | None = None
    staff_role: str | None = None

    @property
    def rate_limit_key(self) -> str:
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return f"{self.role.value}:{self.key_id or self.member_id}"


async def create_api_key(session: AsyncSession, role: Role, *, merchant_id: int | None = None,
                         label: str | None = None, key: str | None = None) -> str:
    """Store a new key's hash and return the key itself (the only time it is visible)."""
    if (role == Role.MERCHANT) != (merchant_id is not None):
        raise ValueError("a merchant key needs a merchant_id, and only a merchant key has one")
    key = key or new_api_key()
    session.add(ApiKey(key_hash=hash_secret(key), prefix=key[:10], role=role, merchant_id=merchant_id,
                       label=label, created_at=utcnow()))
    await session.flush()
    return key


async def create_admin_key(db: Database, label: str | None = None) -> str:
    async with db.sessions.begin() as session:
        return await create_api_key(session, Role.ADMIN, label=label)


async def ensure_admin_key(db: Database, key: str) -> None:
    """Register a bootstrap admin key given in COALITION_ADMIN_KEY (once)."""
    async with db.sessions.begin() as session:
        exists = (await session.execute(select(ApiKey.id).where(ApiKey.key_hash == hash_secret(key)))).first()
        if exists is None:
            await create_api_key(session, Role.ADMIN, label="COALITION_ADMIN_KEY", key=key)


async def revoke_api_key(db: Database, prefix_or_key: str) -> int:
    """Revoke by the full key or by its displayed prefix; returns how many keys were revoked."""
    async with db.sessions.begin() as session:
        condition = (ApiKey.key_hash == hash_secret(prefix_or_key)) if len(prefix_or_key) > 16 else (
            ApiKey.prefix == prefix_or_key)
        result = await session.execute(
            update(ApiKey).where(condition, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
        count = result.rowcount  # type: ignore[attr-defined]
    if not count:
        raise NotFound(f"no active key matches {prefix_or_key[:10]!r}", code="KEY_NOT_FOUND")
    return int(count)


async def list_api_keys(db: Database) -> list[ApiKey]:
    async with db.session() as session:
        return list((await session.execute(select(ApiKey).order_by(ApiKey.id))).scalars())


async def list_merchant_keys(db: Database, merchant_id: int) -> list[ApiKey]:
    async with db.session() as session:
        return list((await session.execute(select(ApiKey).where(ApiKey.merchant_id == merchant_id)
                                           .order_by(ApiKey.id))).scalars())


async def revoke_merchant_key(db: Database, merchant_id: int, key_id: int) -> None:
    """Revoke one of ``merchant_id``'s keys; another merchant's key is not found."""
    async with db.sessions.begin() as session:
        done = await session.execute(update(ApiKey).where(
            ApiKey.id == key_id, ApiKey.merchant_id == merchant_id, ApiKey.revoked_at.is_(None)
        ).values(revoked_at=utcnow()))
    if not done.rowcount:  # type: ignore[attr-defined]
        raise NotFound("no active key with that number", code="KEY_NOT_FOUND")


class Authenticator:
    """Turns a bearer credential into a :class:`Caller` (or None), with a short TTL cache."""

    def __init__(self, db: Database, cache_s: float = 2.0, max_entries: int = 10_000, *,
                 settings: Settings | None = None) -> None:
        self.db = db
        self.settings = settings or Settings()
        self.cache_s = cache_s
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._looking_up: dict[str, asyncio.Task[Caller | None]] = {}
        self._generation = 0  # forget() moves it on: a lookup begun before then is not cached

    async def authenticate(self, credential: str) -> Caller | None:
        if not credential or len(credential) > MAX_CREDENTIAL_LENGTH:
            return None
        digest = hash_secret(credential)
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        if self.cache_s <= 0:
            return await self._lookup(credential, digest)
        lookup = self._looking_up.get(digest)
        if lookup is None:
            lookup = asyncio.create_task(self._lookup_and_cache(credential, digest))
            self._looking_up[digest] = lookup
            lookup.add_done_callback(lambda done: self._looked_up(digest, done))
        # shielded: a caller that gives up (a closed connection) leaves the lookup to the others
        return await asyncio.shield(lookup)

    async def _lookup_and_cache(self, credential: str, digest: str) -> Caller | None:
        started, generation = time.monotonic(), self._generation
        caller = await self._lookup(credential, digest)
        if generation == self._generation:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[digest] = (started + self.cache_s, caller)
        return caller

    def _looked_up(self, digest: str, lookup: asyncio.Task[Caller | None]) -> None:
        if self._looking_up.get(digest) is lookup:
            del self._looking_up[digest]
        if not lookup.cancelled():
            lookup.exception()  # its callers got it; this keeps asyncio from reporting it unretrieved

    async def _lookup(self, credential: str, digest: str) -> Caller | None:
        # A suspended merchant's key still authenticates: it may read its history, and the
        # ledger refuses its writes with MERCHANT_SUSPENDED.
        if credential.startswith(SESSION_PREFIX):
            return await self._session(digest)
        async with self.db.read() as conn:
            if credential.startswith(TOKEN_PREFIX):
                member_id = await member_id_for_token(conn, digest)
                return None if member_id is None else Caller(Role.MEMBER, member_id=member_id)
            row = (await conn.execute(
                select(ApiKey.id, ApiKey.role, ApiKey.merchant_id)
                .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )).first()
        if row is None:
            return None
        return Caller(Role(row.role), key_id=row.id, merchant_id=row.merchant_id)

    async def _session(self, digest: str) -> Caller | None:
        user = await session_user(self.db, self.settings, digest)
        if user is None:
            return None
        role = Role.ADMIN if user.role == StaffRole.ADMIN else Role.MERCHANT
        return Caller(role, merchant_id=user.merchant_id, user_id=user.user_id, staff_role=user.role.value)

    def forget(self) -> None:
        self._cache.clear()
        self._looking_up.clear()
        self._generation += 1
