"""Reversing a merchant's own earn or redemption (a refund at the till).

Reversing an earn removes what is left of its lot; points already spent become the
member's debt (``owed``), repaid first by later earns, and redemptions wait until it is
repaid: the refund exploit (earn, spend, refund) loses the network nothing. Program points
attached to the earn go with it, whoever funds them: the earning merchant's (a campaign's, a
merchant-funded tier's) are in the earn's own entry and lot; a bonus entry attached to the earn
(the network-funded tier bonus, ``program_earns.attached_bonus_key``) is reversed in the same
transaction by a REVERSAL entry of its own (its funder's, ``reverses_id`` the bonus), the same
way: what is left of its lot is taken back, the rest becomes debt. Reversing a
redemption puts the points back into the lots they came from; where such a lot's earn
was itself reversed meanwhile, those points repay the member's debt instead.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.errors import Conflict, Refused, check_idempotency_key, check_text
from coalition.ledger import core
from coalition.ledger.base import LedgerBase
from coalition.ledger.core import LedgerResult, Slice
from coalition.ledger.errors import TransactionNotFound
from coalition.ledger.models import (
    Account,
    Allocation,
    AllocationKind,
    Entry,
    EntryKind,
    Hold,
    HoldStatus,
    Lot,
)
from coalition.ledger.program_earns import attached_bonus_key
from coalition.members.models import Member

REVERSIBLE = {EntryKind.EARN, EntryKind.REDEEM, EntryKind.CAPTURE}


class ReversalOperations(LedgerBase):
    async def reverse(
        self, *, merchant_id: int, transaction_id: int, idempotency_key: str, reason: str | None = None
    ) -> LedgerResult:
        """Reverse one of this merchant's EARN, REDEEM or CAPTURE transactions, once."""
        key = check_idempotency_key(idempotency_key)
        reason = check_text(reason, "reason", 500)
        fingerprint = core.request_hash("reverse", transaction_id=transaction_id, reason=reason)
        now = self.clock()
        return await self.keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._reverse(
            merchant_id, transaction_id, key, fingerprint, reason, now))

    async def _reverse(
        self, merchant_id: int, transaction_id: int, key: str, fingerprint: str, reason: str | None,
        now: dt.datetime,
    ) -> LedgerResult:
        async with self.db.transaction() as conn:
            return await self.reverse_in(conn, merchant_id, transaction_id, key, fingerprint, reason, now)

    async def reverse_in(
        self, conn: AsyncConnection, merchant_id: int, transaction_id: int, key: str, fingerprint: str,
        reason: str | None, now: dt.datetime,
    ) -> LedgerResult:
        """The reversal, in the caller's transaction (programs reverse a voucher's redemption with the
        voucher's own change: coalition/programs/vouchers.py)."""
        outcomes = self.outcomes(conn, merchant_id, key, fingerprint)
        if (earlier := await outcomes.earlier()) is not None:
            return earlier
        row = await outcomes.found((await conn.execute(
            select(Entry).where(Entry.id == transaction_id, Entry.merchant_id == merchant_id)
        )).first(), TransactionNotFound("this merchant has no such transaction: pass the ID of one of its own",
                                        field="transactionId"))
        target = core.entry_from_row(row)
        if target.kind not in REVERSIBLE:
            await outcomes.check_merchant()
            hint = "void the hold instead" if target.kind == EntryKind.HOLD else "it cannot be reversed"
            raise Refused(f"the transaction is a {target.kind.value}: {hint}",
                          code="NOT_REVERSIBLE", field="transactionId")
        honored = await self._honored_slices(conn, target)
        # Points of an earn that already expired stay breakage: only the rest is taken back.
        expired = await self._expired_from_earn(conn, target) if target.kind == EntryKind.EARN else 0
        points = expired - target.points if target.kind == EntryKind.EARN else sum(s.points for s in honored)
        inserted = await core.insert_entry(
            conn, kind=EntryKind.REVERSAL, merchant_id=merchant_id, member_id=target.member_id,
            points=points, reverses_id=target.id, reference=reason, now=now, idempotency_key=key,
            request_hash=fingerprint,
        )
        if inserted is None:  # a concurrent retry took the key, the merchant was suspended, or reversed already
            return await outcomes.explain(
                Conflict("the transaction is already reversed", code="ALREADY_REVERSED", field="transactionId"))
        entry_id = inserted[0]
        if target.kind == EntryKind.EARN:
            member = await self._reverse_earn(conn, target, entry_id, expired)
            member = await self._reverse_attached_bonuses(conn, target, key, reason, now) or member
        else:
            member = await self._restore(conn, target, entry_id, honored)
        entry = Entry.from_values(id=entry_id, kind=EntryKind.REVERSAL, member_id=target.member_id,
                                  merchant_id=merchant_id, points=points, reference=reason, reverses_id=target.id,
                                  idempotency_key=key, request_hash=fingerprint, created_at=now)
        return LedgerResult(entry=entry, member=member)

    async def _honored_slices(self, conn: AsyncConnection, target: Entry) -> list[Slice]:
        if target.kind == EntryKind.EARN:
            return []
        kind = AllocationKind.REDEEM if target.kind == EntryKind.REDEEM else AllocationKind.CAPTURE
        rows = await conn.execute(
            select(Allocation.lot_id, Allocation.issuer_merchant_id, Allocation.points)
            .where(Allocation.entry_id == target.id, Allocation.kind == kind)
            .order_by(Allocation.id)
        )
        return [Slice(r.lot_id, r.issuer_merchant_id, r.points) for r in rows]

    async def _expired_from_earn(self, conn: AsyncConnection, target: Entry) -> int:
        expired = await conn.execute(
            select(func.coalesce(func.sum(Allocation.points), 0))
            .join(Lot, Lot.id == Allocation.lot_id)
            .where(Lot.entry_id == target.id, Allocation.kind == AllocationKind.EXPIRY)
        )
        return int(expired.scalar_one())

    async def _reverse_earn(self, conn: AsyncConnection, target: Entry, entry_id: int, expired: int,
                            by_merchant: int | None = None) -> Member:
        """Take back what is left of ``target``'s lot (an earn, or a bonus attached to one); the rest
        becomes debt. ``by_merchant``: the merchant reversing (the allocations name it), else the target's."""
        now = self.clock()
        member = await core.lock_member(conn, target.member_id)
        lot_row = (await conn.execute(select(Lot).where(Lot.entry_id == target.id))).first()
        left = 0
        if lot_row is not None:
            held = await self._held_from_lot(conn, lot_row.id)
            if held:
                raise Conflict(
                    f"{held} points of the transaction are reserved by an open authorization; "
                    "capture or void it first", code="POINTS_HELD", field="transactionId",
                )
            left = lot_row.remaining
            await core.move_lot_points(conn, {lot_row.id: -left})
            await conn.execute(update(Lot).where(Lot.id == lot_row.id).values(reversed=True))
            await core.add_allocations(conn, entry_id=entry_id, member_id=member.id,
                                       merchant_id=by_merchant or target.merchant_id,
                                       kind=AllocationKind.REVERSAL, now=now,
                                       slices=[Slice(lot_row.id, lot_row.issuer_merchant_id, left)])
        shortfall = target.points - expired - left
        member = await core.add_to_member(
            conn, member.id, balance=-left, owed=shortfall, lifetime_points=-target.points
        )
        await core.add_postings(conn, entry_id, [
            (Account.MEMBER, member.id, -left),
            (Account.DEBT, member.id, -shortfall),
            (Account.ISSUED, target.merchant_id, left + shortfall),
        ])
        return member

    async def _reverse_attached_bonuses(
        self, conn: AsyncConnection, earn: Entry, key: str, reason: str | None, now: dt.datetime,
    ) -> Member | None:
        """Reverse the bonus entries attached to ``earn`` (see the module docstring); the member after, or None."""
        member = None
        for funder in (None, earn.merchant_id):  # the network's key, then the earning merchant's: two index probes
            bonus = await core.entry_by_key(conn, funder, attached_bonus_key(earn.id))
            if bonus is None or bonus.kind != EntryKind.BONUS or bonus.member_id != earn.member_id:
                continue
            expired = await self._expired_from_earn(conn, bonus)
            inserted = await core.insert_entry(
                conn, kind=EntryKind.REVERSAL, merchant_id=funder, member_id=bonus.member_id,
                points=expired - bonus.points, reverses_id=bonus.id, reference=reason, now=now,
                idempotency_key=f"reversal:{bonus.idempotency_key}",
                request_hash=core.request_hash("reverse bonus", earn_reversal=key, bonus=bonus.id),
                require_active_merchant=False,
            )
            if inserted is None:  # unreachable: the earn's own reversal is once, and it alone reverses its bonus
                raise Conflict("the transaction's bonus is already reversed", code="ALREADY_REVERSED",
                               field="transactionId")
            member = await self._reverse_earn(conn, bonus, inserted[0], expired, by_merchant=earn.merchant_id)
        return member

    async def _held_from_lot(self, conn: AsyncConnection, lot_id: int) -> int:
        rows = await conn.execute(
            select(Allocation.kind, func.sum(Allocation.points))
            .join(Hold, Hold.id == Allocation.hold_id)
            .where(Allocation.lot_id == lot_id, Hold.status == HoldStatus.AUTHORIZED)
            .group_by(Allocation.kind)
        )
        sums = {kind: int(total) for kind, total in rows}
        return sums.get(AllocationKind.HOLD, 0) - sums.get(AllocationKind.RELEASE, 0) - sums.get(
            AllocationKind.CAPTURE, 0
        )

    async def _restore(self, conn: AsyncConnection, target: Entry, entry_id: int, honored: list[Slice]) -> Member:
        now = self.clock()
        member = await core.lock_member(conn, target.member_id)
        reversed_lots = set((await conn.execute(
            select(Lot.id).where(Lot.id.in_([s.lot_id for s in honored]), Lot.reversed.is_(True))
        )).scalars())
        owed_left = member.owed
        repay: list[Slice] = []
        for s in honored:
            if s.lot_id in reversed_lots and owed_left:
                x = min(owed_left, s.points)
                repay.append(Slice(s.lot_id, s.issuer_merchant_id, x))
                owed_left -= x
        repaid = member.owed - owed_left
        deltas: dict[int, int] = {}
        for s in honored:
            deltas[s.lot_id] = deltas.get(s.lot_id, 0) + s.points
        for s in repay:
            deltas[s.lot_id] -= s.points
        await core.move_lot_points(conn, deltas)
        await core.add_allocations(conn, kind=AllocationKind.RESTORE, slices=honored, entry_id=entry_id,
                                   member_id=member.id, merchant_id=target.merchant_id, now=now)
        await core.add_allocations(conn, kind=AllocationKind.REVERSAL, slices=repay, entry_id=entry_id,
                                   member_id=member.id, merchant_id=target.merchant_id, now=now)
        total = sum(s.points for s in honored)
        member = await core.add_to_member(conn, member.id, balance=total - repaid, owed=-repaid)
        await core.add_postings(conn, entry_id, [
            (Account.HONORED, target.merchant_id, -total),
            (Account.MEMBER, member.id, total - repaid),
            (Account.DEBT, member.id, repaid),
        ])
        return member
