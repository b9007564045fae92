"""Contact fingerprints: canonical forms, what enrollment stores, and the backfill of older rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from coalition.crypto import NetworkKeys
from coalition.members.contact import canonical_email, canonical_phone, email_fingerprint, phone_fingerprint
from coalition.members.models import Member
from coalition.members.service import backfill_fingerprints, enroll_member, normalize_email, normalize_phone


@pytest.mark.parametrize(("raw", "canonical"), [
    ("ann.smith@example.com", "ann.smith@example.com"),
    ("Ann.Smith@Example.COM", "ann.smith@example.com"),
    ("ann.smith+loyalty@example.com", "ann.smith@example.com"),
    ("ann+a+b@example.com", "ann@example.com"),
    ("ann.smith+1@gmail.com", "annsmith@gmail.com"),
    ("A.N.N.S.M.I.T.H@GMAIL.com", "annsmith@gmail.com"),
    ("ann.smith+x@googlemail.com", "annsmith@gmail.com"),
    ("  annsmith@gmail.com ", "annsmith@gmail.com"),
    ("+promo@example.com", "+promo@example.com"),  # nothing before the tag: kept whole
    ("...@gmail.com", "...@gmail.com"),  # nothing but dots: kept whole
])
def test_canonical_email(raw: str, canonical: str) -> None:
    assert canonical_email(raw) == canonical


def test_dots_and_domains_count_outside_gmail() -> None:
    assert canonical_email("ann.smith@example.com") != canonical_email("annsmith@example.com")
    assert canonical_email("annsmith@gmail.com") != canonical_email("annsmith@gmail.co")
    assert canonical_email("annsmith@mail.gmail.com") == "annsmith@mail.gmail.com"


@pytest.mark.parametrize("raw", ["+44 7700 900123", "+447700900123", "07700 900123", "0044 (7700) 900-123",
                                 "447700900123", "7700.900.123"])
def test_one_numbers_spellings_share_the_last_nine_digits(raw: str) -> None:
    clean = normalize_phone(raw)
    assert clean is not None
    assert canonical_phone(clean) == "700900123"


def test_short_and_different_numbers() -> None:
    assert canonical_phone("+1234567") == "1234567"
    assert canonical_phone("+447700900123") != canonical_phone("+447700900124")


def test_fingerprints_are_keyed_and_not_the_exact_index(keys: NetworkKeys) -> None:
    email = normalize_email("Ann.Smith+1@gmail.com")
    fp = email_fingerprint(keys, email)
    assert fp == email_fingerprint(keys, "annsmith@gmail.com") == keys.blind_index("email-fingerprint",
                                                                                     "annsmith@gmail.com")
    assert fp is not None and len(fp) == 64 and "ann" not in fp
    assert fp != keys.blind_index("email", "annsmith@gmail.com")
    assert fp != email_fingerprint(NetworkKeys(b"another-network"), email)
    assert email_fingerprint(keys, None) is None and phone_fingerprint(keys, None) is None
    assert phone_fingerprint(keys, "+447700900123") == phone_fingerprint(keys, "+07700900123")


@pytest.fixture
async def shop(make_merchant: Any) -> Any:
    return (await make_merchant("Bakery", 1)).merchant


async def _row(db: Any, member_id: int) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(Member).where(Member.id == member_id))).one()


async def _fingerprints(db: Any, member_id: int) -> tuple[str | None, str | None]:
    row = await _row(db, member_id)
    return row.email_fingerprint, row.phone_fingerprint


async def test_enrollment_stores_the_fingerprints(db: Any, keys: NetworkKeys, shop: Any) -> None:
    member = (await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1",
                                  email="Ann.Smith+1@Gmail.com", phone="+44 7700 900123")).member

    row = await _row(db, member.id)
    assert row.email_fingerprint == keys.blind_index("email-fingerprint", "annsmith@gmail.com")
    assert row.phone_fingerprint == keys.blind_index("phone-fingerprint", "700900123")
    assert row.email_index == keys.blind_index("email", "ann.smith+1@gmail.com")  # the exact index is unchanged


async def test_an_enrollment_without_contact_has_no_fingerprint(db: Any, keys: NetworkKeys, shop: Any) -> None:
    member = (await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1")).member

    row = await _row(db, member.id)
    assert row.email_fingerprint is None and row.phone_fingerprint is None


async def test_variants_are_distinct_members_that_share_a_fingerprint(db: Any, keys: NetworkKeys,
                                                                        shop: Any) -> None:
    first = (await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1",
                                 email="ann.smith+1@gmail.com")).member
    second = (await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-2",
                                  email="annsmith@gmail.com")).member

    assert first.id != second.id and first.loyalty_id != second.loyalty_id
    one, two = await _row(db, first.id), await _row(db, second.id)
    assert one.email_index != two.email_index
    assert one.email_fingerprint == two.email_fingerprint is not None


async def test_the_backfill_fills_rows_enrolled_before_fingerprints(db: Any, keys: NetworkKeys, shop: Any) -> None:
    members = [(await enroll_member(db, keys, merchant_id=shop.id, idempotency_key=f"e-{i}", **contact)).member
               for i, contact in enumerate([{"email": "ann.smith@gmail.com", "phone": "+44 7700 900123"},
                                            {"email": "bob@example.com"}, {"phone": "07700 900999"}, {}])]
    expected = {m.id: await _fingerprints(db, m.id) for m in members}
    async with db.transaction() as conn:  # as migration 0004 leaves older rows
        await conn.execute(update(Member).values(email_fingerprint=None, phone_fingerprint=None))

    assert await backfill_fingerprints(db, keys, batch_size=2) == 3

    assert {m.id: await _fingerprints(db, m.id) for m in members} == expected
    assert await backfill_fingerprints(db, keys) == 0  # nothing left to do


async def test_the_backfill_skips_contact_it_cannot_decrypt(db: Any, keys: NetworkKeys, shop: Any) -> None:
    member = (await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e-1",
                                  email="ann@example.com")).member
    async with db.transaction() as conn:
        await conn.execute(update(Member).values(email_fingerprint=None))

    assert await backfill_fingerprints(db, NetworkKeys(b"another-network")) == 0

    assert (await _row(db, member.id)).email_fingerprint is None
