"""Earning and redeeming points at a purchase.

On PostgreSQL a plain earn or redemption is one statement (``fastpath``); whenever that
statement reports anything unusual its transaction is rolled back and the code below, the
one definition of both operations and the only path on SQLite, runs instead.
"""

from __future__ import annotations

import datetime as dt

from coalition.errors import InvalidInput, check_idempotency_key, check_text
from coalition.ledger import core, presence, rules
from coalition.ledger.core import LedgerResult
from coalition.ledger.inputs import check_points, parse_loyalty_id
from coalition.ledger.models import Account, AllocationKind, Entry, EntryKind
from coalition.ledger.program_earns import ProgramEarnOperations


class PurchaseOperations(ProgramEarnOperations):
    async def earn(
        self,
        *,
        merchant_id: int,
        loyalty_id: str,
        purchase_amount_minor: int,
        idempotency_key: str,
        reference: str | None = None,
    ) -> LedgerResult:
        """Issue points for a purchase at the merchant's earn rate (whole points, rounded down)."""
        key = check_idempotency_key(idempotency_key)
        lid = parse_loyalty_id(loyalty_id)
        amount = check_points(purchase_amount_minor, "purchaseAmountMinor", "INVALID_AMOUNT")
        reference = check_text(reference, "reference", 128)
        fingerprint = core.request_hash("earn", loyalty_id=lid, amount=amount, reference=reference)
        now = self.clock()
        return await self.keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._earn(
            merchant_id, lid, amount, reference, key, fingerprint, now))

    async def _earn(
        self, merchant_id: int, lid: str, amount: int, reference: str | None, key: str, fingerprint: str,
        now: dt.datetime,
    ) -> LedgerResult:
        minor_per_unit = 10**self.settings.currency_exponent
        terms = await self.program_terms(merchant_id, now)  # tiers and campaigns (ledger/program_earns.py)
        if self.fast_path and not terms.network_tiers:
            done = await self.fast.earn(
                merchant_id=merchant_id, loyalty_id=lid, amount_minor=amount, minor_per_unit=minor_per_unit,
                reference=reference, idempotency_key=key, request_hash=fingerprint, now=now,
                expires_at=self.lot_expiry(now), campaigns=terms.campaigns, tiers=terms.tiers,
                base_tier_pct=terms.base_tier_pct,
            )
            if done is not None:
                entry_id, points, member = done
                return LedgerResult(entry=_earn_entry(entry_id, member.id, merchant_id, points, amount, reference,
                                                      key, fingerprint, now), member=member)
        async with self.db.transaction() as conn:
            extras = await self.program_extras(conn, terms, merchant_id, lid, amount, minor_per_unit, now)
            inserted = await core.insert_entry(
                conn, kind=EntryKind.EARN, merchant_id=merchant_id, loyalty_id=lid,
                points=core.AtEarnRate(minor_per_unit=minor_per_unit) if extras is None else extras.earn_points,
                amount_minor=amount, reference=reference, now=now, idempotency_key=key, request_hash=fingerprint,
            )
            if inserted is None:
                return await self._not_inserted(conn, merchant_id, key, fingerprint, lid)
            entry_id, member_id, points = inserted
            if (points if extras is None else extras.base_points) <= 0:
                raise InvalidInput(
                    f"a purchase of {amount} minor units earns no whole point at this merchant's rate",
                    code="PURCHASE_TOO_SMALL", field="purchaseAmountMinor",
                )
            member, repaid = await self.credit(conn, member_id, points)
            await self.add_lot(conn, member_id, entry_id, merchant_id, points - repaid, now)
            # The plain earn's legs, with what repaid the member's debt moved from MEMBER to DEBT.
            await core.add_postings(conn, entry_id, [
                (account, holder, amount - repaid if account == Account.MEMBER else amount)
                for account, holder, amount in rules.postings(rules.EARN_LEGS, member_id=member_id,
                                                              merchant_id=merchant_id, points=points)
            ] + [(Account.DEBT, member_id, repaid)])
            if extras is not None:
                member = await self.apply_program_extras(conn, member, entry_id, merchant_id, extras, now)
            if member.referred_by_id is not None:  # the one check referrals cost the earn path
                member = await self.pay_referral_bonuses(conn, member, amount, now)
        entry = _earn_entry(entry_id, member_id, merchant_id, points, amount, reference, key, fingerprint, now)
        return LedgerResult(entry=entry, member=member)

    async def redeem(
        self, *, merchant_id: int, loyalty_id: str, points: int, idempotency_key: str, reference: str | None = None,
        member_proof: str | None = None,
    ) -> LedgerResult:
        """Honor ``points`` at this merchant, consuming the member's lots soonest-expiry first.

        Beyond the network's allowance without proof, ``member_proof`` (the member's presence code)
        is required (:mod:`coalition.ledger.presence`); a refusal stays under the key
        (:mod:`coalition.ledger.refusals`).
        """
        key = check_idempotency_key(idempotency_key)
        lid = parse_loyalty_id(loyalty_id)
        points = check_points(points)
        reference = check_text(reference, "reference", 128)
        proof = presence.check_proof_input(member_proof)
        # The proof is no part of the fingerprint: a retry after the code rotated is the same request.
        fingerprint = core.request_hash("redeem", loyalty_id=lid, points=points, reference=reference)
        now = self.clock()
        allowance = await self.allowance(now)
        return await self.keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._redeem(
            merchant_id, lid, points, reference, key, fingerprint, proof, allowance, now))

    async def _redeem(
        self, merchant_id: int, lid: str, points: int, reference: str | None, key: str, fingerprint: str,
        proof: str | None, allowance: int, now: dt.datetime,
    ) -> LedgerResult:
        # A proof is checked against the loyalty ID here; a wrong one goes straight to the
        # multi-statement path, which refuses it (and keeps the refusal, counted per member).
        proof_step = None if proof is None else presence.matching_step(self.keys, lid, proof, now)
        if self.fast_path and (proof is None or proof_step is not None):
            done = await self.fast.redeem(
                merchant_id=merchant_id, loyalty_id=lid, points=points, reference=reference,
                idempotency_key=key, request_hash=fingerprint, now=now, allowance=allowance,
                since=now - presence.WINDOW, proof_step=proof_step,
            )
            if done is not None:
                entry_id, _, member = done
                return LedgerResult(entry=_redeem_entry(entry_id, member.id, merchant_id, points, reference, key,
                                                        fingerprint, now), member=member)
        async with self.db.transaction() as conn:
            inserted = await core.insert_entry(
                conn, kind=EntryKind.REDEEM, merchant_id=merchant_id, loyalty_id=lid,
                points=-points, reference=reference, now=now, idempotency_key=key, request_hash=fingerprint,
            )
            if inserted is None:
                return await self._not_inserted(conn, merchant_id, key, fingerprint, lid)
            entry_id, member_id, _ = inserted
            member = await self.debit(conn, member_id, points, to_held=False)
            await presence.check(conn, self.keys, member_id=member_id, loyalty_id=lid, merchant_id=merchant_id,
                                 entry_id=entry_id, points=points, proof=proof, allowance=allowance, now=now)
            slices = core.take_fifo(await core.open_lots(conn, member_id, points), points)
            await core.move_lot_points(conn, {s.lot_id: -s.points for s in slices})
            await core.add_allocations(conn, entry_id=entry_id, member_id=member_id, merchant_id=merchant_id,
                                       kind=AllocationKind.REDEEM, slices=slices, now=now)
            await core.add_postings(conn, entry_id, rules.postings(rules.REDEEM_LEGS, member_id=member_id,
                                                                   merchant_id=merchant_id, points=points))
        entry = _redeem_entry(entry_id, member_id, merchant_id, points, reference, key, fingerprint, now)
        return LedgerResult(entry=entry, member=member)


# The transaction a write returns, built the same way whichever path wrote it.
def _earn_entry(entry_id: int, member_id: int, merchant_id: int, points: int, amount: int, reference: str | None,
                key: str, fingerprint: str, now: dt.datetime) -> Entry:
    return Entry.from_values(id=entry_id, kind=EntryKind.EARN, member_id=member_id, merchant_id=merchant_id,
                             points=points, amount_minor=amount, reference=reference, idempotency_key=key,
                             request_hash=fingerprint, created_at=now)


def _redeem_entry(entry_id: int, member_id: int, merchant_id: int, points: int, reference: str | None, key: str,
                  fingerprint: str, now: dt.datetime) -> Entry:
    return Entry.from_values(id=entry_id, kind=EntryKind.REDEEM, member_id=member_id, merchant_id=merchant_id,
                             points=-points, reference=reference, idempotency_key=key, request_hash=fingerprint,
                             created_at=now)
