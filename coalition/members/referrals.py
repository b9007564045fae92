"""Referral rules checked when a member enrolls with a friend's referral code.

Errors (``coalition.errors.Refused``)::

    REFERRAL_LIMIT_REACHED   the referrer already brought in ``referral_daily_limit`` members
                             in the last 24 hours (sybil farms enroll in bursts)

A self-referral (the new contact is a variant of the referrer's own, with the same fingerprint:
``ann+2@gmail.com`` for ``ann@gmail.com``) is not refused but *not counted*: the member is
enrolled without a referrer, so no bonus is ever paid. Refusing it with ``SELF_REFERRAL`` told
whoever held someone's referral code whether a contact was that member's (issue 13, item 5:
a contact oracle); the exact contact of an enrolled member is refused earlier, by the member
service, with ``CONTACT_ALREADY_ENROLLED``, which names nobody.

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


class ReferralLimitReached(Refused):
    code = "REFERRAL_LIMIT_REACHED"


async def check_referral(
    session: AsyncSession, *, referrer_id: int, email_index: str | None, phone_index: str | None,
    now: dt.datetime, daily_limit: int, email_fingerprint: str | None = None, phone_fingerprint: str | None = None,
) -> bool:
    """Refuse a referral that breaks the limit; return whether it counts (False: a self-referral).

    Call inside the enrollment's transaction, after the contact was found not yet enrolled.

    The referrer's row is locked (FOR NO KEY UPDATE, the ledger's own lock) so that two
    enrollments with one code count each other: the limit holds under concurrency. The
    referee's foreign key takes only a KEY SHARE lock, which does not conflict with it.
    """
    referrer = (await session.execute(
        select(Member.id, Member.email_index, Member.phone_index, Member.email_fingerprint, Member.phone_fingerprint)
        .where(Member.id == referrer_id).with_for_update(key_share=True)
    )).one()
    recent = (await session.execute(
        select(func.count()).select_from(Member)
        .where(Member.referred_by_id == referrer_id, Member.created_at > now - WINDOW)
    )).scalar_one()
    if recent >= daily_limit:
        raise ReferralLimitReached(
            f"this referral code was used {recent} times in the last 24 hours, the most allowed; "
            "enroll the member without it or try again tomorrow", field="referralCode",
        )
    # The limit comes first and says nothing about contacts; a self-referral is then dropped
    # without a word, so the answer is the same whoever the contact belongs to.
    pairs = ((email_index, referrer.email_index), (phone_index, referrer.phone_index),
             (email_fingerprint, referrer.email_fingerprint), (phone_fingerprint, referrer.phone_fingerprint))
    return not any(ours and ours == theirs for ours, theirs in pairs)
