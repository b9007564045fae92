"""Earning with programs: the ledger's side of ``programs_hook`` (tiers and campaigns on an earn).

The merchant-funded extra points (a campaign's, and a tier's when the policy says the earning
merchant funds it) are part of the earn's own entry, lot and ``ISSUED`` posting, so settlement
charges them to that merchant like any points it issues, and reversing the earn takes them back
with it. Points the network funds are a network BONUS entry under the key ``tier:<earn entry id>``,
written in the earn's transaction (a savepoint: a bonus refused at the balance limit does not undo
the purchase). ``earn_bonuses`` records the split for campaign results and statements.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.errors import Refused
from coalition.ledger import core
from coalition.ledger.bonuses import BonusOperations
from coalition.ledger.programs_hook import NO_TERMS, EarnTerms, Extras
from coalition.members.models import Member

logger = logging.getLogger("coalition.ledger.program_earns")

TIER_BONUS_REASON = "tier bonus"
ATTACHED_BONUS_PREFIX = "tier:"  # settlement tells the network's tier bonuses by it


def attached_bonus_key(entry_id: int) -> str:
    """The key of the bonus entry attached to the earn ``entry_id`` (the network-funded tier bonus); reversing
    the earn reverses it (coalition/ledger/reversals.py)."""
    return f"{ATTACHED_BONUS_PREFIX}{entry_id}"


class ProgramEarnOperations(BonusOperations):
    async def program_terms(self, merchant_id: int, now: dt.datetime) -> EarnTerms:
        return NO_TERMS if self.programs is None else await self.programs.terms(merchant_id, now)

    async def program_extras(self, conn: AsyncConnection, terms: EarnTerms, merchant_id: int, loyalty_id: str,
                             amount_minor: int, minor_per_unit: int, now: dt.datetime) -> Extras | None:
        if self.programs is None or not terms.any:
            return None
        return await self.programs.extras(conn, terms, merchant_id=merchant_id, loyalty_id=loyalty_id,
                                          amount_minor=amount_minor, minor_per_unit=minor_per_unit, now=now)

    async def apply_program_extras(self, conn: AsyncConnection, member: Member, entry_id: int, merchant_id: int,
                                   extras: Extras, now: dt.datetime) -> Member:
        """After the earn's own points: the network's tier bonus if it funds one, and the record."""
        if self.programs is None or not (extras.tier_points or extras.campaign_points):
            return member
        tier_entry_id = None
        if extras.tier_by_network and extras.tier_points > 0:
            key = attached_bonus_key(entry_id)
            fingerprint = core.request_hash("tier", entry=entry_id, points=extras.tier_points)
            try:
                async with conn.begin_nested():
                    paid = await self._award(conn, member.id, extras.tier_points, key, fingerprint,
                                             TIER_BONUS_REASON, now)
            except Refused as exc:
                logger.warning("tier bonus for member %s not paid: %s", member.id, exc.message)
                paid = None
            if paid is not None:
                member, tier_entry_id = paid.member, paid.entry.id
        await self.programs.record(conn, entry_id=entry_id, merchant_id=merchant_id, extras=extras,
                                   tier_entry_id=tier_entry_id, now=now)
        return member
