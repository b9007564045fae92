"""Enrolling members: loyalty ID, claim code, signed QR code, encrypted contact data, idempotency."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.crypto import NetworkKeys, hash_secret, verify_qr_payload
from coalition.errors import DomainError
from coalition.loyalty_id import normalize_loyalty_id
from coalition.members.models import Member, MemberCredential
from coalition.members.service import TIERS, enroll_member, find_member, tier_for
from coalition.partners.models import MerchantStatus
from coalition.partners.service import set_merchant_status


@pytest.fixture
async def shop(make_merchant: Any) -> Any:
    return (await make_merchant("Bakery", 1)).merchant


@pytest.fixture
def enroll(db: Any, keys: NetworkKeys, shop: Any) -> Any:
    async def call(key: str = "e-1", merchant_id: int | None = None, **contact: Any) -> Any:
        return await enroll_member(db, keys, merchant_id=merchant_id or shop.id, idempotency_key=key, **contact)

    return call


async def member_rows(db: Any) -> list[Any]:
    async with db.read() as conn:
        return list(await conn.execute(select(Member).order_by(Member.id)))


async def refused(db: Any, call: Any, code: str, field: str | None = None) -> DomainError:
    """The enrollment is refused with ``code`` and no member row is added or changed."""
    before = [tuple(r) for r in await member_rows(db)]
    with pytest.raises(DomainError) as info:
        await call
    assert info.value.code == code, repr(info.value)
    if field is not None:
        assert info.value.field == field
    assert [tuple(r) for r in await member_rows(db)] == before
    return info.value


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def test_enrollment_gives_a_valid_loyalty_id_and_a_fresh_member(enroll: Any, shop: Any, db: Any) -> None:
    enrolled = await enroll()
    member = enrolled.member
    assert normalize_loyalty_id(member.loyalty_id) == member.loyalty_id
    assert len(member.loyalty_id) == 14 and member.loyalty_id.count("-") == 2
    assert (member.balance, member.held, member.owed, member.lifetime_points) == (0, 0, 0, 0)
    assert member.enrolled_by_merchant_id == shop.id
    assert member.referred_by_id is None
    assert len(member.referral_code) == 8 and member.referral_code.isalnum()
    assert enrolled.replayed is False
    # the member can be found by the ID, however it is typed
    assert (await find_member(db, member.loyalty_id.lower())).id == member.id


async def test_enrollment_gives_a_claim_code_stored_hashed_and_no_token(enroll: Any, db: Any) -> None:
    enrolled = await enroll(email="ana@example.com")
    assert not hasattr(enrolled, "member_token")
    claim = enrolled.claim
    assert claim is not None and len(claim.code) == 23 and claim.code.count("-") == 3
    async with db.read() as conn:
        [row] = list(await conn.execute(select(MemberCredential)))
    assert (row.member_id, row.kind, row.secret_hash) == (enrolled.member.id, "CLAIM", hash_secret(claim.code))
    assert row.expires_at == claim.expires_at and row.used_at is None and row.revoked_at is None
    assert claim.code not in {str(v) for v in row}


async def test_qr_code_is_signed_by_the_network(enroll: Any, keys: NetworkKeys) -> None:
    enrolled = await enroll()
    qr = enrolled.qr_code
    assert qr.startswith("COA1.")
    assert verify_qr_payload(qr, keys.public_key_b64) == enrolled.member.loyalty_id
    assert json.loads(b64url_decode(qr.split(".")[1])) == {"v": 1, "lid": enrolled.member.loyalty_id}


async def test_tampered_or_foreign_qr_codes_do_not_verify(enroll: Any, keys: NetworkKeys) -> None:
    enrolled = await enroll()
    prefix, body, signature = enrolled.qr_code.split(".")
    other_lid = (await enroll(key="e-2")).member.loyalty_id
    forged_body = b64url_encode(json.dumps({"v": 1, "lid": other_lid}, separators=(",", ":")).encode())
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    stranger = NetworkKeys(b"another network's secret")
    for payload in (
        f"{prefix}.{forged_body}.{signature}",  # other member's ID under this signature
        f"{prefix}.{body}.{flipped}",  # damaged signature
        f"COA2.{body}.{signature}",  # unknown version
        f"{prefix}.{body}",  # no signature
        "",
        "COA1.!!.!!",
        stranger.qr_payload(enrolled.member.loyalty_id),  # signed by someone else
    ):
        assert verify_qr_payload(payload, keys.public_key_b64) is None, payload


async def test_contact_data_is_encrypted_at_rest(enroll: Any, db: Any, keys: NetworkKeys) -> None:
    await enroll(email="  Ana.Silva@Example.COM ", phone="+351 912 345 678")
    async with db.read() as conn:
        row = (await conn.execute(select(Member.email_encrypted, Member.phone_encrypted, Member.email_index,
                                         Member.phone_index))).one()
    email_bytes, phone_bytes = bytes(row.email_encrypted), bytes(row.phone_encrypted)
    for needle in (b"ana.silva@example.com", b"Ana.Silva", b"example", b"912345678", b"351912345678"):
        assert needle not in email_bytes and needle not in phone_bytes
        assert needle.decode() not in row.email_index and needle.decode() not in row.phone_index
    # it decrypts to the normalized values, and the blind index matches them
    assert keys.decrypt(email_bytes) == "ana.silva@example.com"
    assert keys.decrypt(phone_bytes) == "+351912345678"
    assert row.email_index == keys.blind_index("email", "ana.silva@example.com")


@pytest.mark.parametrize(("raw", "normalized"), [
    ("(555) 123-4567", "+5551234567"), ("+44 20.7946.0958", "+442079460958"), ("1234567", "+1234567")])
async def test_phone_numbers_are_normalized(enroll: Any, keys: NetworkKeys, raw: str, normalized: str) -> None:
    enrolled = await enroll(phone=raw)
    assert keys.decrypt(enrolled.member.phone_encrypted) == normalized


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "a b@example.com", "ana@@example.com", "@example.com",
                                   "x" * 65 + "@example.com", "ana@" + "e" * 250 + ".com"])
async def test_invalid_email_is_refused(enroll: Any, db: Any, email: str) -> None:
    await enroll(key="first")
    await refused(db, enroll(email=email), "INVALID_EMAIL", field="email")


@pytest.mark.parametrize("phone", ["123", "123456", "1" * 16, "phone", "+1 555 CALL NOW", "++15551234567"])
async def test_invalid_phone_is_refused(enroll: Any, db: Any, phone: str) -> None:
    await refused(db, enroll(phone=phone), "INVALID_PHONE", field="phone")


async def test_blank_contact_fields_are_treated_as_absent(enroll: Any) -> None:
    enrolled = await enroll(email="   ", phone="")
    assert (enrolled.member.email_encrypted, enrolled.member.phone_encrypted) == (None, None)


@pytest.mark.parametrize(("field", "first", "second"), [
    ("email", "ana@example.com", "  ANA@example.com "),
    ("phone", "+351 912 345 678", "351-912-345-678"),
])
async def test_the_same_contact_cannot_enroll_twice(enroll: Any, db: Any, make_merchant: Any, field: str,
                                                    first: str, second: str) -> None:
    await enroll(key="e-1", **{field: first})
    other_shop = (await make_merchant("Books", 1)).merchant
    # neither at the same merchant with a new key, nor at another merchant
    await refused(db, enroll(key="e-2", **{field: second}), "CONTACT_ALREADY_ENROLLED", field=field)
    await refused(db, enroll(key="e-1", merchant_id=other_shop.id, **{field: second}), "CONTACT_ALREADY_ENROLLED")


async def test_referral_links_the_new_member_to_the_referrer(enroll: Any) -> None:
    referrer = (await enroll(key="e-1")).member
    typed = f"  {referrer.referral_code.lower()} "
    referee = (await enroll(key="e-2", referral_code=typed)).member
    assert referee.referred_by_id == referrer.id
    assert referee.referral_code != referrer.referral_code


@pytest.mark.parametrize("code", ["ZZZZZZZZ", "NOPE-123", "X" * 17, "<script>"])
async def test_unknown_referral_code_is_refused(enroll: Any, db: Any, code: str) -> None:
    await enroll(key="e-1")
    await refused(db, enroll(key="e-2", referral_code=code), "REFERRAL_CODE_NOT_FOUND", field="referralCode")


async def test_replay_returns_the_same_enrollment(enroll: Any, db: Any) -> None:
    first = await enroll(key="e-1", email="ana@example.com", phone="+351912345678")
    rows_before = [tuple(r) for r in await member_rows(db)]
    again = await enroll(key="e-1", email="ANA@example.com ", phone="+351 912 345 678")
    assert again.replayed is True
    assert again.member.id == first.member.id
    assert (again.member.loyalty_id, again.qr_code) == (first.member.loyalty_id, first.qr_code)
    assert [tuple(r) for r in await member_rows(db)] == rows_before


@pytest.mark.parametrize("change", [{"email": "bob@example.com"}, {"email": None}, {"phone": "+351912345679"}])
async def test_same_key_with_other_contact_is_a_conflict(enroll: Any, db: Any, change: dict[str, Any]) -> None:
    await enroll(key="e-1", email="ana@example.com", phone="+351912345678")
    contact = {"email": "ana@example.com", "phone": "+351912345678", **change}
    await refused(db, enroll(key="e-1", **contact), "IDEMPOTENCY_KEY_CONFLICT", field="idempotencyKey")


async def test_keys_are_scoped_per_merchant(enroll: Any, make_merchant: Any) -> None:
    other_shop = (await make_merchant("Books", 1)).merchant
    here = await enroll(key="same")
    there = await enroll(key="same", merchant_id=other_shop.id)
    assert here.member.id != there.member.id
    assert not there.replayed


@pytest.mark.parametrize("key", ["", "  ", "k" * 129])
async def test_invalid_idempotency_key_is_refused(enroll: Any, db: Any, key: str) -> None:
    await refused(db, enroll(key=key), "INVALID_IDEMPOTENCY_KEY", field="idempotencyKey")


async def test_a_suspended_merchant_cannot_enroll(enroll: Any, db: Any, shop: Any) -> None:
    await set_merchant_status(db, shop.id, MerchantStatus.SUSPENDED)
    await refused(db, enroll(key="e-1"), "MERCHANT_SUSPENDED")


async def test_concurrent_retries_enroll_one_member(enroll: Any, db: Any) -> None:
    """Retries of one request racing each other: one member, and every retry gets the enrollment."""
    for person in range(3):
        results = await asyncio.gather(*(enroll(key=f"e-{person}", email=f"p{person}@example.com")
                                         for _ in range(20)), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert len({r.member.id for r in results}) == 1
        assert sum(not r.replayed for r in results) == 1
    assert len(await member_rows(db)) == 3


async def test_concurrent_enrollments_of_one_contact_enroll_it_once(enroll: Any, db: Any) -> None:
    async def attempt(i: int) -> str:
        try:
            await enroll(key=f"e-{i}", email="ana@example.com")
        except DomainError as exc:
            return exc.code
        return "OK"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(8)))
    assert sorted(outcomes) == sorted(["OK"] + ["CONTACT_ALREADY_ENROLLED"] * 7)
    assert len(await member_rows(db)) == 1


async def test_concurrent_enrollments_of_different_people_all_succeed(enroll: Any, db: Any) -> None:
    results = await asyncio.gather(*(enroll(key=f"e-{i}", email=f"p{i}@example.com") for i in range(10)))
    assert len({r.member.id for r in results}) == 10
    async with db.read() as conn:
        assert (await conn.execute(select(func.count(func.distinct(Member.loyalty_id))))).scalar_one() == 10


async def test_find_member_by_unknown_or_malformed_id(db: Any, enroll: Any) -> None:
    from coalition.loyalty_id import new_loyalty_id

    await enroll()
    with pytest.raises(DomainError) as info:
        await find_member(db, new_loyalty_id())
    assert info.value.code == "MEMBER_NOT_FOUND"
    with pytest.raises(DomainError) as info:
        await find_member(db, "nope")
    assert info.value.code == "INVALID_LOYALTY_ID"


@pytest.mark.parametrize(("points", "tier"), [(0, "BASIC"), (999, "BASIC"), (1_000, "SILVER"), (4_999, "SILVER"),
                                              (5_000, "GOLD"), (19_999, "GOLD"), (20_000, "PLATINUM"),
                                              (2**31 - 1, "PLATINUM")])
def test_tier_thresholds(points: int, tier: str) -> None:
    assert tier_for(points) == tier


def test_each_tier_starts_at_its_threshold() -> None:
    for threshold, name in TIERS:
        assert tier_for(threshold) == name
        if threshold:
            assert tier_for(threshold - 1) != name
