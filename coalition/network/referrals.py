"""Referral rules checked when a member enrolls with a friend's referral code.

Errors (``coalition.errors.Refused``)::

    SELF_REFERRAL            the contact given is the referrer's own, or a variant of it with the
                             same fingerprint (``ann+2@gmail.com`` for ``ann@gmail.com``)
    REFERRAL_LIMIT_REACHED   the referrer already brought in ``referral_daily_limit`` members
                             in the last 24 hours (sybil farms enroll in bursts)

(``REFERRAL_CODE_NOT_FOUND`` and ``CONTACT_ALREADY_ENROLLED`` are the member service's.)
The bonuses themselves are paid by the ledger at the referee's first qualifying purchase
(``coalition.ledger.bonuses``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coalition.errors import Refused
from coalition.members.models import Member

WINDOW = dt.timedelta(hours=24)


class SelfReferral(Refused):
    code = "SELF_REFERRAL"


class ReferralLimitReached(Refused):
    code = "REFERRAL_LIMIT_REACHED"


async def check_referral(
    session: AsyncSession, *, referrer_id: int, email_index: str | None, phone_index: str | None,
    now: dt.datetime, daily_limit: int, email_fingerprint: str | None = None, phone_fingerprint: str | None = None,
) -> None:
    """Refuse a referral that breaks a rule. Call inside the enrollment's transaction.

    The referrer's row is locked (FOR NO KEY UPDATE, the ledger's own lock) so that two
    enrollments with one code count each other: the limit holds under concurrency. The
    referee's foreign key takes only a KEY SHARE lock, which does not conflict with it.
    """
    referrer = (await session.execute(
        select(Member.id, Member.email_index, Member.phone_index, Member.email_fingerprint, Member.phone_fingerprint)
        .where(Member.id == referrer_id).with_for_update(key_share=True)
    )).one()
    pairs = ((email_index, referrer.email_index), (phone_index, referrer.phone_index),
             (email_fingerprint, referrer.email_fingerprint), (phone_fingerprint, referrer.phone_fingerprint))
    if any(ours and ours == theirs for ours, theirs in pairs):
        raise SelfReferral("this contact belongs to the member whose referral code was given: members cannot "
                           "refer themselves", field="referralCode")
    recent = (await session.execute(
        select(func.count()).select_from(Member)
        .where(Member.referred_by_id == referrer_id, Member.created_at > now - WINDOW)
    )).scalar_one()
    if recent >= daily_limit:
        raise ReferralLimitReached(
            f"this referral code was used {recent} times in the last 24 hours, the most allowed; "
            "enroll the member without it or try again tomorrow", field="referralCode",
        )
