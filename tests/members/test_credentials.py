"""Member credentials: claim codes, tokens, rotation, revocation (coalition.members.credentials)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from coalition.auth.models import Role
from coalition.auth.service import Authenticator
from coalition.crypto import hash_secret
from coalition.db import utcnow
from coalition.errors import DomainError
from coalition.members.credentials import (
    CLAIM_ALPHABET,
    ClaimCodeInvalid,
    claim_member_access,
    new_claim_code,
    normalize_claim_code,
    reissue_claim_code,
    revoke_member_credentials,
    rotate_member_token,
)
from coalition.members.models import CredentialKind, MemberCredential
from coalition.members.service import enroll_member


@pytest.fixture
async def shop(make_merchant: Any) -> Any:
    return (await make_merchant("Bakery")).merchant


@pytest.fixture
def auth(db: Any) -> Authenticator:
    return Authenticator(db, cache_s=0)


async def credentials(db: Any, member_id: int) -> list[MemberCredential]:
    async with db.session() as session:
        return list((await session.execute(select(MemberCredential).where(MemberCredential.member_id == member_id)
                                           .order_by(MemberCredential.id))).scalars())


def live_claims(rows: list[MemberCredential]) -> list[MemberCredential]:
    now = utcnow()
    return [r for r in rows if r.kind == CredentialKind.CLAIM and r.used_at is None and r.revoked_at is None
            and r.expires_at is not None and r.expires_at > now]


async def claim_error(db: Any, code: str, **kwargs: Any) -> DomainError:
    with pytest.raises(DomainError) as info:
        await claim_member_access(db, code, **kwargs)
    return info.value


def test_codes_and_tokens_carry_enough_entropy() -> None:
    code = new_claim_code()
    compact = code.replace("-", "")
    assert len(compact) == 20 and set(compact) <= set(CLAIM_ALPHABET) and len(CLAIM_ALPHABET) == 32  # 100 bits
    assert len({new_claim_code() for _ in range(1000)}) == 1000
    assert normalize_claim_code(compact.lower()) == code
    assert normalize_claim_code(" " + code.lower().replace("-", " ") + " ") == code
    for bad in ("", "ABC", code + "0", code.replace(code[0], "U"), "x" * 100, "ĀĀĀĀĀ-ĀĀĀĀĀ-ĀĀĀĀĀ-ĀĀĀĀĀ"):
        assert normalize_claim_code(bad) is None


async def test_claiming_gives_a_token_once(db: Any, keys: Any, shop: Any, auth: Authenticator) -> None:
    enrolled = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1", email="ana@example.com")
    assert enrolled.claim is not None
    claimed = await claim_member_access(db, enrolled.claim.code.lower())
    token = claimed.member_token
    assert token.startswith("cmt_") and len(token) >= 4 + 43  # 256 bits, base64url
    assert claimed.member.id == enrolled.member.id
    caller = await auth.authenticate(token)
    assert caller is not None and (caller.role, caller.member_id) == (Role.MEMBER, enrolled.member.id)
    rows = await credentials(db, enrolled.member.id)
    assert [(r.kind, r.used_at is not None) for r in rows] == [(CredentialKind.CLAIM, True),
                                                             (CredentialKind.TOKEN, False)]
    assert rows[1].secret_hash == hash_secret(token) and all(token not in str(vars(r)) for r in rows)
    # The same code again is refused, with the same answer as a code that never existed.
    used = await claim_error(db, enrolled.claim.code)
    unknown = await claim_error(db, new_claim_code())
    malformed = await claim_error(db, "not a code")
    assert {(e.code, e.field, e.message) for e in (used, unknown, malformed)} == {
        ("CLAIM_CODE_INVALID", "claimCode", ClaimCodeInvalid().message)}


async def test_two_concurrent_claims_of_one_code_give_exactly_one_token(db: Any, keys: Any, shop: Any,
                                                                       auth: Authenticator) -> None:
    enrolled = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1")
    assert enrolled.claim is not None

    async def attempt() -> str | None:
        try:
            return (await claim_member_access(db, enrolled.claim.code)).member_token  # type: ignore[union-attr]
        except ClaimCodeInvalid:
            return None

    outcomes = await asyncio.gather(*(attempt() for _ in range(6)))
    tokens = [t for t in outcomes if t is not None]
    assert len(tokens) == 1, outcomes
    rows = await credentials(db, enrolled.member.id)
    assert sum(r.kind == CredentialKind.TOKEN for r in rows) == 1
    assert await auth.authenticate(tokens[0]) is not None


async def test_an_expired_claim_code_is_refused(db: Any, keys: Any, shop: Any) -> None:
    start = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    enrolled = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1", claim_ttl_s=3600, now=start)
    assert enrolled.claim is not None and enrolled.claim.expires_at == start + dt.timedelta(hours=1)
    error = await claim_error(db, enrolled.claim.code, now=start + dt.timedelta(hours=1, seconds=1))
    assert error.code == "CLAIM_CODE_INVALID"
    # Still good just before.
    assert (await claim_member_access(db, enrolled.claim.code, now=start + dt.timedelta(minutes=59))).member_token


async def test_a_replay_issues_a_fresh_code_until_claimed_and_never_a_token(db: Any, keys: Any, shop: Any) -> None:
    first = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1", email="ana@example.com")
    again = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1", email="ana@example.com")
    assert first.claim is not None and again.claim is not None and again.replayed
    assert again.claim.code != first.claim.code
    # Only the newest code is live: the merchant never holds two ways in.
    assert [r.secret_hash for r in live_claims(await credentials(db, first.member.id))] == [
        hash_secret(again.claim.code)]
    assert (await claim_error(db, first.claim.code)).code == "CLAIM_CODE_INVALID"
    await claim_member_access(db, again.claim.code)
    # Once the customer has claimed access, a replay gives no code at all.
    after = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1", email="ana@example.com")
    assert after.replayed and after.claim is None and after.member.id == first.member.id
    assert live_claims(await credentials(db, first.member.id)) == []


async def test_a_replay_never_undoes_an_admins_reissue_or_revocation(db: Any, keys: Any, shop: Any) -> None:
    """A member who never claimed, and lost the code to a rogue shop: the admin's hand-over stands."""
    first = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1")
    _, handed_over = await reissue_claim_code(db, first.member.id, ttl_s=600)
    replay = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1")
    assert replay.replayed and replay.claim is None
    assert [r.secret_hash for r in live_claims(await credentials(db, first.member.id))] == [
        hash_secret(handed_over.code)]
    assert (await claim_member_access(db, handed_over.code)).member_token

    other = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-2")
    assert await revoke_member_credentials(db, other.member.id) == 1
    assert (await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-2")).claim is None


async def test_concurrent_replays_leave_one_live_code(db: Any, keys: Any, shop: Any) -> None:
    first = await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1")
    replays = await asyncio.gather(*(enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1")
                                     for _ in range(5)))
    live = live_claims(await credentials(db, first.member.id))
    assert len(live) == 1
    assert live[0].secret_hash in {hash_secret(r.claim.code) for r in replays if r.claim is not None}


async def test_rotation_replaces_every_token(db: Any, keys: Any, make_member: Any, shop: Any,
                                             auth: Authenticator) -> None:
    enrolled = await make_member(shop.id)
    new = await rotate_member_token(db, enrolled.member.id, label="phone")
    assert new != enrolled.member_token
    assert await auth.authenticate(enrolled.member_token) is None
    caller = await auth.authenticate(new)
    assert caller is not None and caller.member_id == enrolled.member.id
    rows = await credentials(db, enrolled.member.id)
    assert [r.label for r in rows if r.kind == CredentialKind.TOKEN and r.revoked_at is None] == ["phone"]
    with pytest.raises(DomainError) as info:
        await rotate_member_token(db, enrolled.member.id, label="x" * 65)
    assert info.value.code == "INVALID_LABEL"


async def test_revoking_signs_out_everywhere(db: Any, keys: Any, make_member: Any, shop: Any,
                                             auth: Authenticator) -> None:
    enrolled = await make_member(shop.id)
    second = await rotate_member_token(db, enrolled.member.id)
    other = await make_member(shop.id)
    assert await revoke_member_credentials(db, enrolled.member.id) == 1  # the rotation revoked the first already
    assert await auth.authenticate(enrolled.member_token) is None
    assert await auth.authenticate(second) is None
    assert await auth.authenticate(other.member_token) is not None  # another member is untouched


async def test_an_admin_reissues_a_claim_code_for_a_member_who_lost_access(db: Any, keys: Any, make_member: Any,
                                                                          shop: Any, auth: Authenticator) -> None:
    enrolled = await make_member(shop.id)
    member, first = await reissue_claim_code(db, enrolled.member.id, ttl_s=600)
    assert member.id == enrolled.member.id
    assert await auth.authenticate(enrolled.member_token) is None  # the lost (or stolen) token is dead
    member, second = await reissue_claim_code(db, enrolled.member.id, ttl_s=600)
    assert (await claim_error(db, first.code)).code == "CLAIM_CODE_INVALID"  # one live code at a time
    token = (await claim_member_access(db, second.code)).member_token
    assert (await auth.authenticate(token)) is not None
    with pytest.raises(DomainError) as info:
        await reissue_claim_code(db, 999_999, ttl_s=600)
    assert info.value.code == "MEMBER_NOT_FOUND"


async def test_a_revoked_token_stops_working_within_the_cache_time(db: Any, make_member: Any, shop: Any) -> None:
    enrolled = await make_member(shop.id)
    cached = Authenticator(db, cache_s=0.3)
    assert await cached.authenticate(enrolled.member_token) is not None
    await revoke_member_credentials(db, enrolled.member.id, now=utcnow())
    await asyncio.sleep(0.35)
    assert await cached.authenticate(enrolled.member_token) is None


async def test_an_expired_token_is_refused(db: Any, make_member: Any, shop: Any, auth: Authenticator) -> None:
    """Tokens have no expiry today, but the column is honoured (an operator may set one)."""
    enrolled = await make_member(shop.id)
    async with db.sessions.begin() as session:
        row = (await session.execute(select(MemberCredential).where(
            MemberCredential.secret_hash == hash_secret(enrolled.member_token)))).scalar_one()
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
    assert await auth.authenticate(enrolled.member_token) is None
