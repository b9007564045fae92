"""Enrolling members and reading them.

A member is enrolled by a merchant (at its till or web shop) and gets one loyalty ID
that works at every partner and a QR payload the network signs. The merchant also gets a
one-time claim code to hand the customer, who exchanges it for a self-service token
(``coalition.members.credentials``); the merchant never sees the member's token.
Contact data is optional, validated, encrypted (Fernet) and indexed blind (HMAC), so a
second enrollment of the same e-mail or phone is refused without decrypting anything.
Each contact also gets a fingerprint (``coalition.members.contact``) that the usual variants
of one address or number share, for the fraud analysis; a variant is enrolled, and flagged later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coalition.config import DEFAULT_MEMBER_CLAIM_TTL_S
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    check_idempotency_key,
)
from coalition.ledger.errors import MemberNotFound
from coalition.ledger.idempotency import KeyColumns, Outcomes, find_earlier, request_hash
from coalition.ledger.inputs import parse_loyalty_id
from coalition.loyalty_id import new_loyalty_id, new_referral_code
from coalition.members.contact import email_fingerprint, phone_fingerprint
from coalition.members.credentials import (
    ENROLLMENT_LABELS,
    ClaimCode,
    enrollment_claim_open,
    issue_claim_code,
    lock_member,
)
from coalition.members.models import Member
from coalition.members.referrals import check_referral
from coalition.text import unsafe_character

logger = logging.getLogger("coalition.members")

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
TIERS = [(20_000, "PLATINUM"), (5_000, "GOLD"), (1_000, "SILVER"), (0, "BASIC")]


def tier_for(lifetime_points: int) -> str:
    """Tier by points earned across the network (net of reversals)."""
    return next(name for threshold, name in TIERS if lifetime_points >= threshold)


def normalize_email(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    email = raw.strip().lower()
    # The message never quotes the input: it is contact data, and error messages can reach logs.
    if len(email) > 254 or not EMAIL.match(email) or unsafe_character(email) is not None:
        raise InvalidInput("email is not an e-mail address (name@domain.example, printable characters, at "
                           "most 254)", code="INVALID_EMAIL", field="email")
    return email


def normalize_phone(raw: str | None) -> str | None:
    """E.164: an optional leading + and 7 to 15 digits; spaces, dots, dashes and brackets are dropped."""
    if raw is None or not raw.strip():
        return None
    compact = re.sub(r"[\s.\-()]", "", raw.strip())
    if not re.fullmatch(r"\+?[0-9]{7,15}", compact):  # ASCII digits: \d takes '٣' and '²' too
        raise InvalidInput("phone is not a phone number (7 to 15 digits, an optional leading +)",
                           code="INVALID_PHONE", field="phone")
    return compact if compact.startswith("+") else "+" + compact


DEFAULT_CLAIM_TTL_S = DEFAULT_MEMBER_CLAIM_TTL_S


@dataclass(frozen=True)
class Enrollment:
    """An enrollment's result. ``claim`` is None on a replay once the member has claimed access:
    the network never hands a merchant anything that opens the member's account twice."""

    member: Member
    qr_code: str
    claim: ClaimCode | None
    replayed: bool = False


class ReferralCodeNotFound(NotFound):
    code = "REFERRAL_CODE_NOT_FOUND"


async def enroll_member(
    db: Database, keys: NetworkKeys, *, merchant_id: int, idempotency_key: str, email: str | None = None,
    phone: str | None = None, referral_code: str | None = None, referral_daily_limit: int = 10,
    claim_ttl_s: int = DEFAULT_CLAIM_TTL_S, now: dt.datetime | None = None,
) -> Enrollment:
    """Enroll a member; with a referral code, the referral rules apply (``coalition.members.referrals``).

    Outcomes, in the precedence of ``coalition.ledger.idempotency``: the same key's earlier enrollment (a replay:
    ``IDEMPOTENCY_KEY_CONFLICT`` if the input differs), ``MERCHANT_SUSPENDED``,
    ``CONTACT_ALREADY_ENROLLED`` (before anything about the referral code, so the answer
    never depends on whose contact it is), ``REFERRAL_CODE_NOT_FOUND``,
    ``REFERRAL_LIMIT_REACHED``, a new member with a new claim code.
    """
    key = check_idempotency_key(idempotency_key)
    now = now or utcnow()
    clean_email = normalize_email(email)
    clean_phone = normalize_phone(phone)
    code = referral_code.strip().upper() if referral_code and referral_code.strip() else None
    if code is not None and (len(code) > 16 or not code.isalnum()):
        raise ReferralCodeNotFound(f"no member has referral code {code[:16]!r}", field="referralCode")
    fingerprint = request_hash("enroll", email=clean_email, phone=clean_phone, referral_code=code)
    email_index = keys.blind_index("email", clean_email) if clean_email else None
    phone_index = keys.blind_index("phone", clean_phone) if clean_phone else None
    email_print, phone_print = email_fingerprint(keys, clean_email), phone_fingerprint(keys, clean_phone)
    def outcomes(session: AsyncSession) -> Outcomes[Enrollment]:
        return Outcomes(earlier=lambda: _replay(session, keys, merchant_id, key, fingerprint, now, claim_ttl_s),
                        executor=session, merchant_id=merchant_id, action="enroll members")

    try:
        async with db.sessions.begin() as session:
            enrollment = outcomes(session)
            if (earlier := await enrollment.earlier()) is not None:
                return earlier
            await enrollment.check_merchant()
            for index, field in ((email_index, "email"), (phone_index, "phone")):
                column = Member.email_index if field == "email" else Member.phone_index
                if index and (await session.execute(select(Member.id).where(column == index))).first():
                    # A concurrent retry of this very request may have committed since the key check.
                    return await enrollment.explain(ContactAlreadyEnrolled(field))
            referrer_id = None
            if code is not None:
                referrer_id = (await session.execute(
                    select(Member.id).where(Member.referral_code == code))).scalar()
                if referrer_id is None:
                    raise ReferralCodeNotFound(f"no member has referral code {code!r}", field="referralCode")
                counts = await check_referral(
                    session, referrer_id=referrer_id, email_index=email_index, phone_index=phone_index,
                    email_fingerprint=email_print, phone_fingerprint=phone_print, now=now,
                    daily_limit=referral_daily_limit)
                if not counts:
                    referrer_id = None
            member = Member(
                loyalty_id=new_loyalty_id(), referral_code=new_referral_code(), referred_by_id=referrer_id,
                email_encrypted=keys.encrypt(clean_email) if clean_email else None,
                phone_encrypted=keys.encrypt(clean_phone) if clean_phone else None, email_index=email_index,
                phone_index=phone_index, email_fingerprint=email_print, phone_fingerprint=phone_print,
                balance=0, held=0, owed=0, lifetime_points=0,
                enrolled_by_merchant_id=merchant_id, enroll_idempotency_key=key,
                enroll_request_hash=fingerprint, created_at=now,
            )
            session.add(member)
            await session.flush()
            claim = await issue_claim_code(session, member.id, now=now, ttl_s=claim_ttl_s, label=ENROLLMENT_LABELS[0])
            return Enrollment(member=member, qr_code=keys.qr_payload(member.loyalty_id), claim=claim)
    except IntegrityError:
        # A concurrent request with the same key or contact won the race: answer as it would now.
        async with db.sessions.begin() as session:
            return await outcomes(session).explain(ContactAlreadyEnrolled(None))


class ContactAlreadyEnrolled(Conflict):
    """The contact is some member's. Says so, and nothing about whose (no oracle: issue 13, item 5)."""

    code = "CONTACT_ALREADY_ENROLLED"

    def __init__(self, field: str | None) -> None:
        super().__init__(f"a member with this {field or 'contact'} is already enrolled: ask the customer for "
                         "their loyalty ID or QR code", field=field)


# An enrollment's key is kept on the member it enrolled, unique per enrolling merchant.
ENROLLMENT_KEYS = KeyColumns(Member, key="enroll_idempotency_key", fingerprint="enroll_request_hash",
                             scope=("enrolled_by_merchant_id",))


async def _replay(
    session: AsyncSession, keys: NetworkKeys, merchant_id: int, key: str, fingerprint: str, now: dt.datetime,
    claim_ttl_s: int,
) -> Enrollment | None:
    """The enrollment this merchant already made with this idempotency key, if any.

    Never the member's token (the merchant never had it): a fresh claim code while the member
    has not claimed access yet and nobody revoked or re-issued its codes (the earlier, unused
    one expires, so one code at most is live), else none.
    """
    earlier = await find_earlier(session, ENROLLMENT_KEYS, (merchant_id,), key, fingerprint)
    if earlier is None:
        return None
    claim = None
    await lock_member(session, earlier.id)
    if await enrollment_claim_open(session, earlier.id):
        claim = await issue_claim_code(session, earlier.id, now=now, ttl_s=claim_ttl_s, label=ENROLLMENT_LABELS[1])
    return Enrollment(member=earlier, qr_code=keys.qr_payload(earlier.loyalty_id), claim=claim, replayed=True)


async def find_member(db: Database, loyalty_id: str) -> Member:
    lid = parse_loyalty_id(loyalty_id)
    async with db.session() as session:
        member = (await session.execute(select(Member).where(Member.loyalty_id == lid))).scalar_one_or_none()
    if member is None:
        raise MemberNotFound(f"no member has loyalty ID {lid}", field="loyaltyId")
    return member


async def backfill_fingerprints(db: Database, keys: NetworkKeys, *, batch_size: int = 1000) -> int:
    """Fill in the contact fingerprints of members enrolled before they existed; return how many rows.

    Migration 0004 cannot compute them: SQL cannot decrypt, and migrations do not hold the
    key. So rows with contact data and a NULL fingerprint are read here in batches (keyset on
    the id, so the loop ends even if a row cannot be decrypted), decrypted and fingerprinted
    off the event loop, and updated one short transaction per batch. ``run_analysis`` calls it
    before loading, so every analysis sees every member's fingerprints; once all rows are
    filled it costs one query. Enrollment writes the same values, so a race is harmless.
    """
    missing = or_(and_(Member.email_encrypted.is_not(None), Member.email_fingerprint.is_(None)),
                  and_(Member.phone_encrypted.is_not(None), Member.phone_fingerprint.is_(None)))
    write = (update(Member).where(Member.id == bindparam("member_id"))
             .values(email_fingerprint=bindparam("email_fp"), phone_fingerprint=bindparam("phone_fp")))
    after, filled, unreadable = 0, 0, 0
    while True:
        async with db.read() as conn:
            rows = (await conn.execute(
                select(Member.id, Member.email_encrypted, Member.phone_encrypted)
                .where(Member.id > after, missing).order_by(Member.id).limit(batch_size)
            )).all()
        if not rows:
            break
        after = rows[-1].id
        values = await asyncio.to_thread(_fingerprint_rows, keys, rows)
        unreadable += len(rows) - len(values)
        if values:
            async with db.transaction() as conn:
                await conn.execute(write, values)
            filled += len(values)
    if unreadable:
        logger.warning("%d members' contact data could not be decrypted with this network's key: their "
                       "fingerprints stay empty and they are left out of shared-contact alerts", unreadable)
    return filled


def _fingerprint_rows(keys: NetworkKeys, rows: Sequence[Any]) -> list[dict[str, Any]]:
    values = []
    for row in rows:
        try:
            email = keys.decrypt(row.email_encrypted) if row.email_encrypted is not None else None
            phone = keys.decrypt(row.phone_encrypted) if row.phone_encrypted is not None else None
        except InvalidToken:
            continue
        values.append({"member_id": row.id, "email_fp": email_fingerprint(keys, email),
                       "phone_fp": phone_fingerprint(keys, phone)})
    return values
