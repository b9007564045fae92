"""Member credentials: random tokens and one-time claim codes, stored hashed, revocable.

A member token (``cmt_`` + 256 random bits) is what a member's wallet sends as
``Authorization: Bearer``. Like an API key it is stored only as its SHA-256
(``coalition.crypto.hash_secret``) in ``member_credentials``, shown once, and can be
rotated and revoked. The merchant that enrolls a customer never sees it: enrollment hands
the merchant a one-time **claim code** for the customer, and only the customer exchanges
it (``claim_member_access``) for a token.

Claim codes are 20 characters of Crockford base32 (100 random bits) in groups of five,
typed or scanned from a link; they expire (``COALITION_MEMBER_CLAIM_TTL_S``, default 7 days),
work once, and a member has at most one live code (issuing one revokes the others). Every
way a claim can fail (unknown, mistyped, expired, used, revoked) is the same
``CLAIM_CODE_INVALID`` with the same message, so a failed claim says nothing about which
codes exist; ``claim_member_access`` is the single entry point, the place to rate-limit
failed attempts (``ClaimCodeInvalid`` marks a failure).

Lifecycle::

    enrollMember ──> CLAIM (live) ──claimMemberAccess──> CLAIM (used) + TOKEN
                         │ replay before the claim (and before any revocation or re-issue):
                         │ the CLAIM expires, a new one is issued; afterwards a replay gets none
    rotateMemberToken:   every live TOKEN revoked, one new TOKEN
    revokeMemberTokens:  every live TOKEN and CLAIM revoked ("sign out everywhere")
    issueMemberClaimCode (admin): every live TOKEN and CLAIM revoked, one new CLAIM
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coalition.auth.member_tokens import TOKEN_PREFIX, live_credential
from coalition.crypto import hash_secret
from coalition.db import Database, utcnow
from coalition.errors import Refused, check_text
from coalition.ledger.errors import MemberNotFound
from coalition.members.models import CredentialKind, Member, MemberCredential

CLAIM_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CLAIM_GROUPS, CLAIM_GROUP_LENGTH = 4, 5  # 20 characters x 5 bits = 100 bits
# Letters people (and OCR) confuse with digits; Crockford folds them in when decoding.
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0"})
MAX_CLAIM_CODE_INPUT = 64
MAX_LABEL_LENGTH = 64
ENROLLMENT_LABELS = ("enrollment", "enrollment replay")  # the codes enrollMember itself issued


class ClaimCodeInvalid(Refused):
    """Every failed claim, whatever the reason: the caller must not learn which codes exist."""

    code = "CLAIM_CODE_INVALID"

    def __init__(self) -> None:
        super().__init__("this claim code is not valid: it may be mistyped, expired or already used; "
                         "ask the shop or the network for a new one", field="claimCode")


@dataclass(frozen=True)
class ClaimCode:
    code: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ClaimedAccess:
    member: Member
    member_token: str


def new_member_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_claim_code() -> str:
    raw = "".join(secrets.choice(CLAIM_ALPHABET) for _ in range(CLAIM_GROUPS * CLAIM_GROUP_LENGTH))
    return "-".join(raw[i:i + CLAIM_GROUP_LENGTH] for i in range(0, len(raw), CLAIM_GROUP_LENGTH))


def normalize_claim_code(raw: str) -> str | None:
    """The canonical form of a typed code (case, spaces, dashes, I/L/O folded), or None if it cannot be one."""
    if not isinstance(raw, str) or len(raw) > MAX_CLAIM_CODE_INPUT:
        return None
    compact = "".join(ch for ch in raw.upper() if ch not in " -\t").translate(_CONFUSABLE)
    if len(compact) != CLAIM_GROUPS * CLAIM_GROUP_LENGTH or any(ch not in CLAIM_ALPHABET for ch in compact):
        return None
    return "-".join(compact[i:i + CLAIM_GROUP_LENGTH] for i in range(0, len(compact), CLAIM_GROUP_LENGTH))


def claim_url(public_url: str, code: str) -> str:
    """The link a shop prints or sends: the code rides in the fragment, which browsers never send to a server."""
    return f"{public_url.rstrip('/')}/claim#code={code}"


async def add_token(session: AsyncSession, member_id: int, *, now: dt.datetime, label: str | None = None) -> str:
    """Store a new token's hash for ``member_id`` and return the token (the only time it is visible)."""
    token = new_member_token()
    session.add(MemberCredential(member_id=member_id, kind=CredentialKind.TOKEN, secret_hash=hash_secret(token),
                                 label=label, created_at=now))
    await session.flush()
    return token


async def issue_claim_code(session: AsyncSession, member_id: int, *, now: dt.datetime, ttl_s: int,
                           label: str | None = None) -> ClaimCode:
    """A new one-time claim code for ``member_id``; the member's other live codes expire now.

    Superseded codes are expired, not revoked: ``revoked_at`` is kept for a deliberate
    revocation (the member's or an admin's), which :func:`enrollment_claim_open` looks for.
    The caller holds the member's lock (:func:`lock_member`) or has just inserted the member.
    """
    await session.execute(
        update(MemberCredential)
        .where(MemberCredential.member_id == member_id, MemberCredential.kind == CredentialKind.CLAIM,
               MemberCredential.used_at.is_(None), live_credential(now))
        .values(expires_at=now)
    )
    code = new_claim_code()
    expires_at = now + dt.timedelta(seconds=ttl_s)
    session.add(MemberCredential(member_id=member_id, kind=CredentialKind.CLAIM, secret_hash=hash_secret(code),
                                 label=label, created_at=now, expires_at=expires_at))
    await session.flush()
    return ClaimCode(code=code, expires_at=expires_at)


async def enrollment_claim_open(session: AsyncSession, member_id: int) -> bool:
    """Whether a replayed enrollment may hand the merchant a fresh claim code.

    Only while nothing but the enrollment's own codes exist, unused and never revoked on
    purpose: once the customer claimed access, or the member or an admin revoked or re-issued
    anything, the enrolling merchant gets nothing more (it must not undo an admin's hand-over).
    """
    other = (await session.execute(select(MemberCredential.id).where(
        MemberCredential.member_id == member_id,
        or_(MemberCredential.kind != CredentialKind.CLAIM, MemberCredential.used_at.is_not(None),
            MemberCredential.revoked_at.is_not(None), MemberCredential.label.is_(None),
            MemberCredential.label.not_in(ENROLLMENT_LABELS))
    ).limit(1))).first()
    return other is None


async def claim_member_access(db: Database, raw_code: str, *, now: dt.datetime | None = None) -> ClaimedAccess:
    """Exchange a claim code for a new member token, once. Raises :class:`ClaimCodeInvalid` on any failure.

    The code is spent by one conditional UPDATE (live and unused → used) under the member's
    lock, so of two concurrent claims exactly one gets a token, on SQLite and PostgreSQL alike.
    """
    now = now or utcnow()
    code = normalize_claim_code(raw_code)
    if code is None:
        raise ClaimCodeInvalid()
    digest = hash_secret(code)
    async with db.sessions.begin() as session:
        owner = (await session.execute(select(MemberCredential.member_id).where(
            MemberCredential.secret_hash == digest, MemberCredential.kind == CredentialKind.CLAIM))).scalar()
        if owner is None:
            raise ClaimCodeInvalid()
        member = await lock_member(session, owner)
        spent = (await session.execute(
            update(MemberCredential)
            .where(MemberCredential.secret_hash == digest, MemberCredential.used_at.is_(None), live_credential(now))
            .values(used_at=now).returning(MemberCredential.id)
        )).scalar()
        if spent is None:
            raise ClaimCodeInvalid()
        token = await add_token(session, owner, now=now, label="claimed")
    return ClaimedAccess(member=member, member_token=token)


async def rotate_member_token(db: Database, member_id: int, *, label: str | None = None,
                              now: dt.datetime | None = None) -> str:
    """Revoke every live token of the member and return one new one (the member's wallet keeps it).

    Every token, not only the one the call came with: a member rotates because a token may
    have leaked, and which one is rarely known. Other devices sign in again with the new token.
    """
    clean_label = check_text(label, "label", MAX_LABEL_LENGTH)
    now = now or utcnow()
    async with db.sessions.begin() as session:
        await lock_member(session, member_id)
        await _revoke(session, member_id, now, CredentialKind.TOKEN)
        return await add_token(session, member_id, now=now, label=clean_label or "rotated")


async def revoke_member_credentials(db: Database, member_id: int, *, now: dt.datetime | None = None) -> int:
    """Sign the member out everywhere: revoke every live token and claim code; return how many."""
    now = now or utcnow()
    async with db.sessions.begin() as session:
        await lock_member(session, member_id)
        return await _revoke(session, member_id, now, CredentialKind.TOKEN, CredentialKind.CLAIM)


async def reissue_claim_code(db: Database, member_id: int, *, ttl_s: int, now: dt.datetime | None = None
                             ) -> tuple[Member, ClaimCode]:
    """For a member who lost access (admin): revoke everything it holds and issue a new claim code."""
    now = now or utcnow()
    async with db.sessions.begin() as session:
        member = await lock_member(session, member_id)
        await _revoke(session, member_id, now, CredentialKind.TOKEN, CredentialKind.CLAIM)
        return member, await issue_claim_code(session, member_id, now=now, ttl_s=ttl_s, label="reissued")


async def lock_member(session: AsyncSession, member_id: int) -> Member:
    """Lock the member's row (FOR NO KEY UPDATE, the ledger's own lock) before changing its credentials.

    Every change to a member's credentials takes it first, then the credential rows, so two
    changes to one member run one after the other (a replayed enrollment and a claim cannot
    both leave a live code; "revoke all" leaves no token behind) and never deadlock.
    """
    member = (await session.execute(select(Member).where(Member.id == member_id).with_for_update(key_share=True))
              ).scalar_one_or_none()
    if member is None:
        raise MemberNotFound(f"no member has id {member_id}")
    return member


async def _revoke(session: AsyncSession, member_id: int, now: dt.datetime, *kinds: CredentialKind) -> int:
    result = await session.execute(
        update(MemberCredential)
        .where(MemberCredential.member_id == member_id, MemberCredential.kind.in_(kinds),
               MemberCredential.revoked_at.is_(None), MemberCredential.used_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
