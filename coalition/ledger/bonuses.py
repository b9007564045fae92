"""Points the network itself issues: referral bonuses.

A bonus is an entry with ``merchant_id`` NULL and a lot whose issuer is NULL (the network),
so settlement reimburses whichever partner later honors the points and charges no partner
for issuing them. Postings: ``ISSUED`` (account NULL, the network) -points against the
member's ``MEMBER`` (+ ``DEBT`` while the member owes points: a bonus repays debt first,
as an earn does).

Once only: the idempotency key is network-scoped. ``entries``' unique
``(merchant_id, idempotency_key)`` does not apply when ``merchant_id`` is NULL (NULLs are
distinct), so a partial unique index on ``idempotency_key WHERE merchant_id IS NULL``
guarantees it, and the insert is ``ON CONFLICT DO NOTHING``. Referral bonuses use
deterministic keys (``referral:<referee id>:referee`` / ``:referrer``): two earns racing
for a referee's first purchase both try the same key and exactly one inserts; the other
waits on the index entry, then finds it.

Referral bonuses are paid inside the transaction of the qualifying earn; the only cost
on the earn path for members nobody referred is a test of ``referred_by_id`` on the row
the earn's UPDATE already returns. Lock order stays safe: a referrer always enrolled
before the referee, so a bonus locks members in descending id order (referee, then
referrer) and no two earns can wait on each other in a cycle.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.errors import Refused, check_idempotency_key, check_text
from coalition.ledger import core
from coalition.ledger.base import LedgerBase
from coalition.ledger.core import LedgerResult
from coalition.ledger.errors import MemberNotFound
from coalition.ledger.inputs import check_points
from coalition.ledger.models import Account, Entry, EntryKind
from coalition.members.models import Member

logger = logging.getLogger("coalition.ledger.bonuses")

REFERRAL_REASON_REFEREE = "referral welcome bonus"
REFERRAL_REASON_REFERRER = "referral bonus"


def referral_keys(referee_id: int) -> tuple[str, str]:
    """The network-scoped idempotency keys of a referee's two bonuses: (referee's, referrer's)."""
    return f"referral:{referee_id}:referee", f"referral:{referee_id}:referrer"


class BonusOperations(LedgerBase):
    async def award_network_bonus(
        self, *, member_id: int, points: int, idempotency_key: str, reason: str | None = None
    ) -> LedgerResult:
        """Give ``points`` issued by the network to a member, once per ``idempotency_key``."""
        key = check_idempotency_key(idempotency_key)
        points = check_points(points)
        reason = check_text(reason, "reason", 128)
        fingerprint = core.request_hash("bonus", member_id=member_id, points=points, reason=reason)
        now = self.clock()
        async with self.db.transaction() as conn:
            result = await self._award(conn, member_id, points, key, fingerprint, reason, now)
            if result is None:  # the key was used (a retry) or no such member
                return await self.outcomes(conn, None, key, fingerprint).explain(
                    MemberNotFound(f"no member {member_id}", field="memberId"))
            return result

    async def _award(
        self, conn: AsyncConnection, member_id: int, points: int, key: str, fingerprint: str,
        reason: str | None, now: dt.datetime,
    ) -> LedgerResult | None:
        """Insert the bonus in the caller's transaction; None when the key was used (or no such member)."""
        inserted = await core.insert_entry(
            conn, kind=EntryKind.BONUS, merchant_id=None, member_id=member_id, points=points,
            reference=reason, now=now, idempotency_key=key, request_hash=fingerprint,
            require_active_merchant=False,
        )
        if inserted is None:
            return None
        entry_id = inserted[0]
        member, repaid = await self.credit(conn, member_id, points)
        await self.add_lot(conn, member_id, entry_id, None, points - repaid, now)
        await core.add_postings(conn, entry_id, [
            (Account.ISSUED, None, -points),
            (Account.MEMBER, member_id, points - repaid),
            (Account.DEBT, member_id, repaid),
        ])
        entry = Entry.from_values(id=entry_id, kind=EntryKind.BONUS, member_id=member_id, merchant_id=None,
                                  points=points, reference=reason, idempotency_key=key, request_hash=fingerprint,
                                  created_at=now)
        return LedgerResult(entry=entry, member=member)

    async def pay_referral_bonuses(
        self, conn: AsyncConnection, referee: Member, amount_minor: int, now: dt.datetime
    ) -> Member:
        """Called by an earn of a referred member: pay both bonuses at the first qualifying purchase.

        Returns the referee after the bonus (unchanged when nothing was due).
        """
        settings = self.settings
        referrer_id = referee.referred_by_id
        if referrer_id is None or amount_minor < settings.referral_min_purchase_minor:
            return referee
        referee_key, referrer_key = referral_keys(referee.id)
        # One indexed probe: once the marker exists, later earns of this member stop here.
        marker = referee_key if settings.referral_welcome_points else referrer_key
        if not (settings.referral_welcome_points or settings.referral_bonus_points):
            return referee
        if await core.entry_by_key(conn, None, marker) is not None:
            return referee
        for member_id, points, key, role, reason in (
            (referee.id, settings.referral_welcome_points, referee_key, "referee", REFERRAL_REASON_REFEREE),
            (referrer_id, settings.referral_bonus_points, referrer_key, "referrer", REFERRAL_REASON_REFERRER),
        ):
            if not points:
                continue
            fingerprint = core.request_hash("referral", referee=referee.id, role=role)
            try:
                # A savepoint: a bonus refused (balance at the limit) must not undo the purchase.
                async with conn.begin_nested():
                    paid = await self._award(conn, member_id, points, key, fingerprint, reason, now)
            except Refused as exc:
                logger.warning("referral bonus for member %s not paid: %s", member_id, exc.message)
                continue
            if paid is None:  # a concurrent earn paid it between the probe and the insert
                return referee
            if member_id == referee.id:
                referee = paid.member
        return referee
