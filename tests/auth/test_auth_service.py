"""Authentication: API keys (admin, merchant), member tokens, revocation and the short cache."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from coalition.auth.models import ApiKey, Role
from coalition.auth.service import (
    MAX_CREDENTIAL_LENGTH,
    Authenticator,
    create_admin_key,
    create_api_key,
    ensure_admin_key,
    list_api_keys,
    revoke_api_key,
)
from coalition.crypto import hash_secret
from coalition.errors import DomainError


@pytest.fixture
def auth(db: Any) -> Authenticator:
    return Authenticator(db, cache_s=0)


async def test_admin_key_resolves_to_an_admin(db: Any, auth: Authenticator) -> None:
    key = await create_admin_key(db, label="ops")
    caller = await auth.authenticate(key)
    assert caller is not None
    assert (caller.role, caller.merchant_id, caller.member_id) == (Role.ADMIN, None, None)
    [stored] = await list_api_keys(db)
    assert (caller.key_id, stored.label, stored.key_hash) == (stored.id, "ops", hash_secret(key))
    assert caller.rate_limit_key == f"ADMIN:{stored.id}"


async def test_merchant_key_resolves_to_its_merchant(make_merchant: Any, auth: Authenticator) -> None:
    a = await make_merchant("A")
    b = await make_merchant("B")
    for onboarding in (a, b):
        caller = await auth.authenticate(onboarding.api_key)
        assert caller is not None
        assert (caller.role, caller.merchant_id) == (Role.MERCHANT, onboarding.merchant.id)


async def test_member_token_resolves_to_its_member(make_merchant: Any, make_member: Any,
                                                   auth: Authenticator) -> None:
    shop = await make_merchant("A")
    ana = await make_member(shop.merchant.id, email="ana@example.com")
    bob = await make_member(shop.merchant.id)
    for enrolled in (ana, bob):
        caller = await auth.authenticate(enrolled.member_token)
        assert caller is not None
        assert (caller.role, caller.member_id, caller.merchant_id) == (Role.MEMBER, enrolled.member.id, None)
        assert caller.rate_limit_key == f"MEMBER:{enrolled.member.id}"


@pytest.mark.parametrize("credential", ["", "coa_unknown", "cmt_unknown", "x" * (MAX_CREDENTIAL_LENGTH + 1)])
async def test_unknown_or_malformed_credentials_resolve_to_nobody(db: Any, auth: Authenticator,
                                                                  credential: str) -> None:
    await create_admin_key(db)
    assert await auth.authenticate(credential) is None


async def test_a_key_too_long_is_refused_even_if_stored(db: Any, auth: Authenticator) -> None:
    long_key = "coa_" + "k" * MAX_CREDENTIAL_LENGTH
    async with db.sessions.begin() as session:
        await create_api_key(session, Role.ADMIN, key=long_key)
    assert await auth.authenticate(long_key) is None


async def test_an_api_key_is_not_a_member_token(make_merchant: Any, make_member: Any, auth: Authenticator) -> None:
    shop = await make_merchant("A")
    enrolled = await make_member(shop.merchant.id)
    # a member token with its prefix changed is looked up among API keys, and not found
    assert await auth.authenticate("coa_" + enrolled.member_token[4:]) is None


async def test_revoked_key_resolves_to_nobody(db: Any, auth: Authenticator, make_merchant: Any) -> None:
    shop = await make_merchant("A")
    other = await make_merchant("B")
    assert await revoke_api_key(db, shop.api_key) == 1
    assert await auth.authenticate(shop.api_key) is None
    # other keys keep working
    assert await auth.authenticate(other.api_key) is not None
    [revoked] = [k for k in await list_api_keys(db) if k.merchant_id == shop.merchant.id]
    assert revoked.revoked_at is not None


async def test_revoke_by_displayed_prefix(db: Any, auth: Authenticator) -> None:
    key = await create_admin_key(db)
    [stored] = await list_api_keys(db)
    assert key.startswith(stored.prefix)
    assert await revoke_api_key(db, stored.prefix) == 1
    assert await auth.authenticate(key) is None


async def test_revoking_twice_or_an_unknown_key_is_not_found(db: Any) -> None:
    key = await create_admin_key(db)
    await revoke_api_key(db, key)
    for target in (key, "coa_" + "z" * 40, "coa_nope"):
        with pytest.raises(DomainError) as info:
            await revoke_api_key(db, target)
        assert info.value.code == "KEY_NOT_FOUND"


async def test_cache_keeps_an_answer_until_forgotten(db: Any) -> None:
    # given a caching authenticator that has seen a key
    auth = Authenticator(db, cache_s=60)
    key = await create_admin_key(db)
    assert await auth.authenticate(key) is not None
    # when the key is revoked, the cached answer still stands within the TTL
    await revoke_api_key(db, key)
    assert await auth.authenticate(key) is not None
    # and after forget() the revocation is seen
    auth.forget()
    assert await auth.authenticate(key) is None
    # an uncached authenticator sees it at once
    assert await Authenticator(db, cache_s=0).authenticate(key) is None


async def test_cache_entries_expire_after_the_ttl(db: Any) -> None:
    auth = Authenticator(db, cache_s=0.2)
    key = await create_admin_key(db)
    assert await auth.authenticate(key) is not None
    await revoke_api_key(db, key)
    assert await auth.authenticate(key) is not None  # cached
    await asyncio.sleep(0.3)
    assert await auth.authenticate(key) is None


async def test_negative_answers_are_cached_too(db: Any) -> None:
    auth = Authenticator(db, cache_s=60)
    key = "coa_" + "n" * 40
    assert await auth.authenticate(key) is None
    async with db.sessions.begin() as session:
        await create_api_key(session, Role.ADMIN, key=key)
    assert await auth.authenticate(key) is None
    auth.forget()
    assert await auth.authenticate(key) is not None


async def test_without_cache_every_call_reads_the_database(db: Any, auth: Authenticator) -> None:
    key = await create_admin_key(db)
    assert await auth.authenticate(key) is not None
    await revoke_api_key(db, key)
    assert await auth.authenticate(key) is None


async def test_a_full_cache_is_emptied_rather_than_grown(db: Any) -> None:
    auth = Authenticator(db, cache_s=60, max_entries=2)
    keys = [await create_admin_key(db) for _ in range(3)]
    for key in keys[:2]:
        assert await auth.authenticate(key) is not None
    for key in keys[:2]:
        await revoke_api_key(db, key)
    # the third key fills the cache past its bound: the two cached answers are dropped
    assert await auth.authenticate(keys[2]) is not None
    assert [await auth.authenticate(key) for key in keys[:2]] == [None, None]


async def test_ensure_admin_key_registers_once(db: Any, auth: Authenticator) -> None:
    key = "coa_bootstrap_" + "b" * 30
    await ensure_admin_key(db, key)
    await ensure_admin_key(db, key)
    async with db.read() as conn:
        rows = list(await conn.execute(select(ApiKey.role, ApiKey.label).where(ApiKey.key_hash == hash_secret(key))))
        total = (await conn.execute(select(func.count()).select_from(ApiKey))).scalar_one()
    assert [tuple(r) for r in rows] == [(Role.ADMIN, "COALITION_ADMIN_KEY")]
    assert total == 1
    caller = await auth.authenticate(key)
    assert caller is not None and caller.role == Role.ADMIN


async def test_ensure_admin_key_does_not_revive_a_revoked_key(db: Any, auth: Authenticator) -> None:
    key = "coa_bootstrap_" + "r" * 30
    await ensure_admin_key(db, key)
    await revoke_api_key(db, key)
    await ensure_admin_key(db, key)
    assert await auth.authenticate(key) is None


async def test_key_roles_must_match_merchants(db: Any, make_merchant: Any) -> None:
    shop = await make_merchant("A")
    async with db.sessions.begin() as session:
        with pytest.raises(ValueError, match="merchant"):
            await create_api_key(session, Role.MERCHANT)
        with pytest.raises(ValueError, match="merchant"):
            await create_api_key(session, Role.ADMIN, merchant_id=shop.merchant.id)


@pytest.fixture
def key_reads(db: Any) -> Iterator[list[str]]:
    """The statements that read api_keys, as they are sent."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    yield seen
    event.remove(db.engine.sync_engine, "before_cursor_execute", before)


async def test_concurrent_misses_wait_for_one_lookup(db: Any, key_reads: list[str]) -> None:
    # given a caching authenticator and a key it has not seen (or whose entry expired)
    auth = Authenticator(db, cache_s=0.3)
    key = await create_admin_key(db)
    # when fifty requests with that key arrive at once
    callers = await asyncio.gather(*(auth.authenticate(key) for _ in range(50)))
    # then one read answers them all
    assert len(key_reads) == 1
    assert len(set(callers)) == 1 and callers[0] is not None and callers[0].role == Role.ADMIN
    # and once the entry expires, the next burst again costs one read
    await asyncio.sleep(0.35)
    again = await asyncio.gather(*(auth.authenticate(key) for _ in range(50)))
    assert len(key_reads) == 2
    assert set(again) == set(callers)


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_cached(db: Any, key_reads: list[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator(db, cache_s=60)
    key = await create_admin_key(db)
    real_lookup = auth._lookup

    async def failing(credential: str, digest: str) -> Any:
        await asyncio.sleep(0.01)
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(auth, "_lookup", failing)
    results = await asyncio.gather(*(auth.authenticate(key) for _ in range(5)), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError] * 5
    # the failure is not remembered: the next call reads again and succeeds
    monkeypatch.setattr(auth, "_lookup", real_lookup)
    caller = await auth.authenticate(key)
    assert caller is not None and len(key_reads) == 1


def hold_lookups(auth: Authenticator, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Make ``auth``'s database lookups wait until the returned event is set, then run as usual."""
    real_lookup = auth._lookup
    release = asyncio.Event()

    async def held(credential: str, digest: str) -> Any:
        await release.wait()
        return await real_lookup(credential, digest)

    monkeypatch.setattr(auth, "_lookup", held)
    return release


async def test_a_caller_that_gives_up_leaves_the_lookup_to_the_others(db: Any, key_reads: list[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator(db, cache_s=60)
    key = await create_admin_key(db)
    release = hold_lookups(auth, monkeypatch)
    first, second, third = (asyncio.create_task(auth.authenticate(key)) for _ in range(3))
    await asyncio.sleep(0)
    first.cancel()  # e.g. its client hung up
    release.set()
    assert (await second) is not None and (await third) == (await second)
    assert first.cancelled() and len(key_reads) == 1
    # the answer was cached: a later call reads nothing
    assert await auth.authenticate(key) == (await second)
    assert len(key_reads) == 1


async def test_forget_during_a_lookup_keeps_its_answer_out_of_the_cache(db: Any, key_reads: list[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator(db, cache_s=60)
    key = await create_admin_key(db)
    release = hold_lookups(auth, monkeypatch)
    before = asyncio.create_task(auth.authenticate(key))
    await asyncio.sleep(0)
    # the key is revoked and the cache forgotten while the lookup is under way
    await revoke_api_key(db, key)
    auth.forget()
    release.set()
    await before  # what it read, before or after the revocation, is not kept
    assert await auth.authenticate(key) is None
    assert len(key_reads) == 2
