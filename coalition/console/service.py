"""Console users and sessions: create users, check passwords (argon2id), open and close sessions.

A session's cookie holds ``css_`` and 256 random bits; the table keeps its SHA-256 only. A
session ends ``session_idle_s`` after its last use or ``session_absolute_s`` after sign-in,
whichever comes first. Signing in always opens a new session (and closes the one the browser
came with), so a session id planted before sign-in is worth nothing after it.

Wrong passwords: ``login_max_failures`` in a row lock the account for ``login_lockout_s``.
An unknown e-mail costs the same argon2 verification as a known one, so timing does not tell
which e-mails have accounts. The per-address budget is the web layer's (the auth failures limiter).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from coalition.config import Settings
from coalition.console.errors import EmailTaken, SignInRefused, WeakPassword
from coalition.console.models import ConsoleSession, ConsoleUser, StaffRole
from coalition.crypto import hash_secret
from coalition.db import Database, utcnow
from coalition.errors import InvalidInput, NotFound

SESSION_PREFIX = "css_"
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MIN_PASSWORD_LENGTH = 10
TOUCH_EVERY_S = 60  # last_seen_at is written at most this often per session

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown: the same work as for a real account.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class SessionUser:
    """Who a live session belongs to."""

    session_id: int
    user_id: int
    email: str
    role: StaffRole
    merchant_id: int | None


def normalize_email(raw: str) -> str | None:
    """Trimmed and lower-cased; None unless it looks like name@domain.example (at most 254 characters)."""
    email = raw.strip().lower()
    if not email:
        return None
    if len(email) > 254 or not EMAIL.fullmatch(email) or not email.isprintable():
        raise InvalidInput("email is not an e-mail address (name@domain.example)", code="INVALID_EMAIL",
                           field="email")
    return email


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if len(password) > 1024:
        raise InvalidInput("a password has at most 1024 characters", code="PASSWORD_TOO_LONG", field="password")
    return _hasher.hash(password)


async def create_user(db: Database, *, email: str, password: str, role: StaffRole,
                      merchant_id: int | None) -> ConsoleUser:
    """A new user; owners and cashiers belong to a merchant, admins to none."""
    clean = normalize_email(email)
    if clean is None:
        raise InvalidInput("an e-mail address is required", code="INVALID_EMAIL", field="email")
    if (role == StaffRole.ADMIN) != (merchant_id is None):
        raise InvalidInput("owners and cashiers belong to a merchant; admins to none", code="INVALID_ROLE",
                           field="role")
    user = ConsoleUser(email=clean, password_hash=hash_password(password), role=role, merchant_id=merchant_id,
                       failed_attempts=0, created_at=utcnow())
    try:
        async with db.sessions.begin() as session:
            session.add(user)
    except IntegrityError:
        raise EmailTaken("a user with this e-mail exists already", field="email") from None
    return user


async def list_users(db: Database, merchant_id: int | None) -> list[ConsoleUser]:
    async with db.session() as session:
        query = select(ConsoleUser).where(ConsoleUser.merchant_id == merchant_id if merchant_id is not None
                                          else ConsoleUser.merchant_id.is_(None))
        return list((await session.execute(query.order_by(ConsoleUser.id))).scalars())


async def disable_user(db: Database, user_id: int, *, merchant_id: int | None) -> None:
    """Disable a user of ``merchant_id`` (a foreign user is not found) and end its sessions."""
    now = utcnow()
    async with db.sessions.begin() as session:
        done = await session.execute(update(ConsoleUser).where(
            ConsoleUser.id == user_id, ConsoleUser.merchant_id == merchant_id, ConsoleUser.disabled_at.is_(None),
            ConsoleUser.role != StaffRole.OWNER).values(disabled_at=now))
        if not done.rowcount:  # type: ignore[attr-defined]
            raise NotFound("no such cashier", code="USER_NOT_FOUND")
        await session.execute(update(ConsoleSession).where(
            ConsoleSession.user_id == user_id, ConsoleSession.revoked_at.is_(None)).values(revoked_at=now))


async def sign_in(db: Database, settings: Settings, *, email: str, password: str, replaces: str | None = None,
                  now: dt.datetime | None = None) -> tuple[str, SessionUser]:
    """Check the password and open a session; returns the cookie value. Raises :class:`SignInRefused`."""
    now = now or utcnow()
    try:
        clean = normalize_email(email) or ""
    except InvalidInput:
        clean = ""
    async with db.sessions.begin() as session:
        user = (await session.execute(select(ConsoleUser).where(ConsoleUser.email == clean))).scalar_one_or_none()
        usable = user is not None and user.disabled_at is None and (
            user.locked_until is None or user.locked_until <= now)
        good = _verify(user.password_hash if user is not None else _DUMMY_HASH, password)
        if user is None:
            raise SignInRefused()
        if not (usable and good):
            if usable:  # a wrong password on a usable account counts; a locked one stays locked as it is
                # In SQL, not in Python: concurrent guesses each count (no lost update).
                await session.execute(update(ConsoleUser).where(ConsoleUser.id == user.id).values(
                    failed_attempts=ConsoleUser.failed_attempts + 1))
                await session.execute(update(ConsoleUser).where(
                    ConsoleUser.id == user.id, ConsoleUser.failed_attempts >= settings.login_max_failures
                ).values(failed_attempts=0, locked_until=now + dt.timedelta(seconds=settings.login_lockout_s)))
            await session.commit()
            raise SignInRefused()
        user.failed_attempts, user.locked_until = 0, None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        if replaces:
            await session.execute(update(ConsoleSession).where(
                ConsoleSession.token_hash == hash_secret(replaces)).values(revoked_at=now))
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        row = ConsoleSession(token_hash=hash_secret(token), user_id=user.id, created_at=now, last_seen_at=now,
                             expires_at=now + dt.timedelta(seconds=settings.session_absolute_s))
        session.add(row)
        await session.flush()
        return token, SessionUser(row.id, user.id, user.email, user.role, user.merchant_id)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password[:1024])
    except (VerificationError, InvalidHashError):
        return False


async def session_user(db: Database, settings: Settings, digest: str, *,
                       now: dt.datetime | None = None) -> SessionUser | None:
    """The user of the live session whose token hashes to ``digest``, or None; marks it used."""
    now = now or utcnow()
    async with db.read() as conn:
        row = (await conn.execute(
            select(ConsoleSession.id, ConsoleSession.last_seen_at, ConsoleUser.id.label("user_id"), ConsoleUser.email,
                   ConsoleUser.role, ConsoleUser.merchant_id)
            .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
            .where(ConsoleSession.token_hash == digest, ConsoleSession.revoked_at.is_(None),
                   ConsoleSession.expires_at > now, ConsoleUser.disabled_at.is_(None))
        )).first()
    if row is None:
        return None
    idle = (now - row.last_seen_at).total_seconds()
    if idle > settings.session_idle_s:
        return None
    if idle > TOUCH_EVERY_S:
        async with db.sessions.begin() as session:
            await session.execute(update(ConsoleSession).where(ConsoleSession.id == row.id).values(last_seen_at=now))
    return SessionUser(row.id, row.user_id, row.email, StaffRole(row.role), row.merchant_id)


async def sign_out(db: Database, token: str) -> None:
    async with db.sessions.begin() as session:
        await session.execute(update(ConsoleSession).where(
            ConsoleSession.token_hash == hash_secret(token), ConsoleSession.revoked_at.is_(None)
        ).values(revoked_at=utcnow()))
