"""Console users and sessions: passwords, lockout, expiry, disabling, fraud reviews (also concurrently)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.console.errors import EmailTaken, SignInRefused, WeakPassword
from coalition.console.models import ConsoleUser, StaffRole
from coalition.console.service import (
    create_user,
    disable_user,
    session_user,
    sign_in,
    sign_out,
)
from coalition.crypto import hash_secret
from coalition.errors import InvalidInput, NotFound
from coalition.partners.service import onboard_merchant

PASSWORD = "correct horse battery"


@pytest.fixture
async def shop(db: Any) -> int:
    return (await onboard_merchant(db, name="Shop")).merchant.id


async def test_passwords_are_stored_as_argon2id_and_checked(db: Any, settings: Any, shop: int) -> None:
    user = await create_user(db, email=" Owner@Example.com ", password=PASSWORD, role=StaffRole.OWNER,
                             merchant_id=shop)
    assert user.email == "owner@example.com" and user.password_hash.startswith("$argon2id$")
    token, who = await sign_in(db, settings, email="OWNER@example.com", password=PASSWORD)
    assert token.startswith("css_") and who.role == StaffRole.OWNER and who.merchant_id == shop
    found = await session_user(db, settings, hash_secret(token))
    assert found is not None and found.user_id == user.id


async def test_user_rules(db: Any, shop: int) -> None:
    with pytest.raises(WeakPassword):
        await create_user(db, email="a@example.com", password="short", role=StaffRole.OWNER, merchant_id=shop)
    with pytest.raises(InvalidInput):
        await create_user(db, email="a@example.com", password=PASSWORD, role=StaffRole.ADMIN, merchant_id=shop)
    with pytest.raises(InvalidInput):
        await create_user(db, email="a@example.com", password=PASSWORD, role=StaffRole.CASHIER, merchant_id=None)
    await create_user(db, email="a@example.com", password=PASSWORD, role=StaffRole.OWNER, merchant_id=shop)
    with pytest.raises(EmailTaken):
        await create_user(db, email="A@example.com", password=PASSWORD, role=StaffRole.CASHIER, merchant_id=shop)


async def test_concurrent_wrong_passwords_all_count_and_lock(db: Any, settings: Any, shop: int) -> None:
    await create_user(db, email="o@example.com", password=PASSWORD, role=StaffRole.OWNER, merchant_id=shop)
    results = await asyncio.gather(*(sign_in(db, settings, email="o@example.com", password=f"wrong {n}")
                                     for n in range(settings.login_max_failures)), return_exceptions=True)
    assert all(isinstance(r, SignInRefused) for r in results)
    with pytest.raises(SignInRefused):  # locked now, even with the right password
        await sign_in(db, settings, email="o@example.com", password=PASSWORD)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.login_lockout_s + 1)
    token, _ = await sign_in(db, settings, email="o@example.com", password=PASSWORD, now=later)
    assert token


async def test_sessions_end_idle_absolute_and_on_sign_out(db: Any, settings: Any, shop: int) -> None:
    await create_user(db, email="o@example.com", password=PASSWORD, role=StaffRole.OWNER, merchant_id=shop)
    start = dt.datetime.now(dt.UTC)
    token, _ = await sign_in(db, settings, email="o@example.com", password=PASSWORD, now=start)
    digest = hash_secret(token)
    step = dt.timedelta(seconds=settings.session_idle_s - 5)
    at = start
    while at + step < start + dt.timedelta(seconds=settings.session_absolute_s):  # used often: stays open
        at += step
        assert await session_user(db, settings, digest, now=at) is not None
    assert await session_user(db, settings, digest, now=start + dt.timedelta(
        seconds=settings.session_absolute_s + 1)) is None  # absolute expiry
    token2, _ = await sign_in(db, settings, email="o@example.com", password=PASSWORD, now=start)
    idle = start + dt.timedelta(seconds=settings.session_idle_s + 1)
    assert await session_user(db, settings, hash_secret(token2), now=idle) is None
    token3, _ = await sign_in(db, settings, email="o@example.com", password=PASSWORD, replaces=token2)
    await sign_out(db, token3)
    assert await session_user(db, settings, hash_secret(token3)) is None


async def test_signing_in_again_ends_the_session_it_replaces(db: Any, settings: Any, shop: int) -> None:
    await create_user(db, email="o@example.com", password=PASSWORD, role=StaffRole.OWNER, merchant_id=shop)
    old, _ = await sign_in(db, settings, email="o@example.com", password=PASSWORD)
    new, _ = await sign_in(db, settings, email="o@example.com", password=PASSWORD, replaces=old)
    assert new != old
    assert await session_user(db, settings, hash_secret(old)) is None
    assert await session_user(db, settings, hash_secret(new)) is not None


async def test_disabling_a_cashier_ends_its_sessions_and_only_the_merchants_own(db: Any, settings: Any,
                                                                              shop: int) -> None:
    other = (await onboard_merchant(db, name="Other")).merchant.id
    cashier = await create_user(db, email="c@example.com", password=PASSWORD, role=StaffRole.CASHIER,
                                merchant_id=shop)
    owner = await create_user(db, email="o@example.com", password=PASSWORD, role=StaffRole.OWNER, merchant_id=shop)
    token, _ = await sign_in(db, settings, email="c@example.com", password=PASSWORD)
    with pytest.raises(NotFound):
        await disable_user(db, cashier.id, merchant_id=other)
    with pytest.raises(NotFound):
        await disable_user(db, owner.id, merchant_id=shop)  # the owner is not disabled from the console
    await disable_user(db, cashier.id, merchant_id=shop)
    assert await session_user(db, settings, hash_secret(token)) is None
    with pytest.raises(SignInRefused):
        await sign_in(db, settings, email="c@example.com", password=PASSWORD)


async def test_an_unknown_email_costs_a_verification_too(db: Any, settings: Any) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SignInRefused):
        await sign_in(db, settings, email="nobody@example.com", password=PASSWORD)
    assert loop.time() - started > 0.01  # an argon2 verification ran (tens of milliseconds)
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(ConsoleUser))).scalar_one() == 0
