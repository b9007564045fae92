"""Two-phase redemptions: authorize -> capture (full or partial) | void | expire.

Authorizing takes the points out of the member's lots at once (soonest expiry first) and
parks them under the hold, so they can neither be spent twice nor expire while held.
Capturing honors the first ``c`` held points and releases the rest to their lots.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.errors import Conflict, DomainError, InvalidInput, Refused, check_idempotency_key
from coalition.ledger import core, presence
from coalition.ledger.base import LedgerBase
from coalition.ledger.core import LedgerResult
from coalition.ledger.errors import HoldNotFound, MerchantSuspended, NotAHold
from coalition.ledger.inputs import check_points, parse_loyalty_id
from coalition.ledger.models import Account, Allocation, AllocationKind, Entry, EntryKind, Hold, HoldStatus
from coalition.members.models import Member


def hold_from_row(row: object) -> Hold:
    return Hold(**dict(row._mapping))  # type: ignore[attr-defined]


async def _missing_hold(conn: AsyncConnection, merchant_id: int, hold_id: int, by_transaction_id: bool) -> DomainError:
    """The refusal of a hold this merchant does not have: NOT_A_HOLD for its own transaction of another
    kind (named by transaction id), else HOLD_NOT_FOUND (another merchant's hold looks like no hold)."""
    if by_transaction_id:
        kind = (await conn.execute(
            select(Entry.kind).where(Entry.id == hold_id, Entry.merchant_id == merchant_id)
        )).scalar_one_or_none()
        if kind is not None:
            return NotAHold(f"this transaction is a {kind.value}, not an authorization: capture or void the "
                           "HOLD transaction that authorizeRedemption returned", field="holdId")
    # No number in the message: the caller's ID is opaque (coalition.ids).
    return HoldNotFound("this merchant has no such hold: pass the holdId authorizeRedemption returned",
                       field="holdId")


class HoldOperations(LedgerBase):
    async def authorize(
        self, *, merchant_id: int, loyalty_id: str, points: int, idempotency_key: str,
        expires_in_s: int | None = None, member_proof: str | None = None,
    ) -> LedgerResult:
        """Reserve points for a later capture; they come back by themselves after ``expires_in_s``.

        A hold counts toward the allowance without proof of presence like a redemption
        (:mod:`coalition.ledger.presence`).
        """
        key = check_idempotency_key(idempotency_key)
        lid = parse_loyalty_id(loyalty_id)
        points = check_points(points)
        if expires_in_s is None:
            expires_in_s = self.settings.default_hold_expiry_s
        if isinstance(expires_in_s, bool) or not 1 <= expires_in_s <= self.settings.max_hold_expiry_s:
            raise InvalidInput(
                f"expiresInSeconds must be between 1 and {self.settings.max_hold_expiry_s}, got {expires_in_s}",
                code="INVALID_EXPIRY", field="expiresInSeconds",
            )
        proof = presence.check_proof_input(member_proof)
        fingerprint = core.request_hash("authorize", loyalty_id=lid, points=points, expires_in_s=expires_in_s)
        now = self.clock()
        allowance = await self.allowance(now)
        return await self.keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._authorize(
            merchant_id, lid, points, expires_in_s, key, fingerprint, proof, allowance, now))

    async def _authorize(
        self, merchant_id: int, lid: str, points: int, expires_in_s: int, key: str, fingerprint: str,
        proof: str | None, allowance: int, now: dt.datetime,
    ) -> LedgerResult:
        async with self.db.transaction() as conn:
            inserted = await core.insert_entry(
                conn, kind=EntryKind.HOLD, merchant_id=merchant_id, loyalty_id=lid,
                points=-points, now=now, idempotency_key=key, request_hash=fingerprint,
            )
            if inserted is None:
                return await self._not_inserted(conn, merchant_id, key, fingerprint, lid)
            entry_id, member_id, _ = inserted
            member = await self.debit(conn, member_id, points, to_held=True)
            await presence.check(conn, self.keys, member_id=member_id, loyalty_id=lid, merchant_id=merchant_id,
                                 entry_id=entry_id, points=points, proof=proof, allowance=allowance, now=now)
            hold = Hold(id=entry_id, member_id=member_id, merchant_id=merchant_id, points=points,
                        captured_points=None, status=HoldStatus.AUTHORIZED,
                        expires_at=now + dt.timedelta(seconds=expires_in_s), closed_at=None, created_at=now)
            await conn.execute(insert(Hold).values(
                id=hold.id, member_id=member_id, merchant_id=merchant_id, points=points,
                status=HoldStatus.AUTHORIZED, expires_at=hold.expires_at, created_at=now,
            ))
            slices = core.take_fifo(await core.open_lots(conn, member_id, points), points)
            await core.move_lot_points(conn, {s.lot_id: -s.points for s in slices})
            await core.add_allocations(conn, entry_id=entry_id, member_id=member_id, merchant_id=merchant_id,
                                       kind=AllocationKind.HOLD, slices=slices, now=now, hold_id=entry_id)
            await core.add_postings(conn, entry_id, [
                (Account.MEMBER, member_id, -points), (Account.HELD, member_id, points),
            ])
        entry = Entry.from_values(id=entry_id, kind=EntryKind.HOLD, member_id=member_id, merchant_id=merchant_id,
                                  points=-points, hold_id=entry_id, idempotency_key=key, request_hash=fingerprint,
                                  created_at=now)
        return LedgerResult(entry=entry, member=member, hold=hold)

    async def capture(
        self, *, merchant_id: int, hold_id: int, idempotency_key: str, points: int | None = None,
        by_transaction_id: bool = False,
    ) -> LedgerResult:
        """Honor ``points`` of the hold (all of it by default) and release the rest.

        ``hold_id`` is the hold's id, which is also its HOLD transaction's id; ``by_transaction_id``
        says the caller named a transaction, so one of another kind is refused as NOT_A_HOLD.
        """
        key = check_idempotency_key(idempotency_key)
        if points is not None:
            points = check_points(points)
        return await self._close(merchant_id, hold_id, key, points, capture=True, by_transaction_id=by_transaction_id)

    async def void(
        self, *, merchant_id: int, hold_id: int, idempotency_key: str, by_transaction_id: bool = False
    ) -> LedgerResult:
        """Release every held point back to the lots it came from (``hold_id`` as for :meth:`capture`)."""
        key = check_idempotency_key(idempotency_key)
        return await self._close(merchant_id, hold_id, key, None, capture=False, by_transaction_id=by_transaction_id)

    async def _close(
        self, merchant_id: int, hold_id: int, key: str, points: int | None, *, capture: bool,
        by_transaction_id: bool,
    ) -> LedgerResult:
        operation = "capture" if capture else "void"
        fingerprint = core.request_hash(operation, hold_id=hold_id, points=points)
        now = self.clock()
        return await self.keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._close_checked(
            merchant_id, hold_id, key, fingerprint, points, now, capture=capture, by_transaction_id=by_transaction_id))

    async def _close_checked(
        self, merchant_id: int, hold_id: int, key: str, fingerprint: str, points: int | None, now: dt.datetime, *,
        capture: bool, by_transaction_id: bool,
    ) -> LedgerResult:
        expired_member: int | None = None
        try:
            async with self.db.transaction() as conn:
                outcomes = self.outcomes(conn, merchant_id, key, fingerprint)
                if (earlier := await outcomes.earlier()) is not None:
                    return earlier
                row = await outcomes.found((await conn.execute(
                    select(Hold).where(Hold.id == hold_id, Hold.merchant_id == merchant_id)
                )).first(), lambda: _missing_hold(conn, merchant_id, hold_id, by_transaction_id))
                hold = hold_from_row(row)
                captured = (points if points is not None else hold.points) if capture else 0
                if captured > hold.points:
                    await outcomes.check_merchant()
                    raise Refused(f"the hold reserves {hold.points} points, {captured} asked",
                                  code="CAPTURE_EXCEEDS_HOLD", field="points")
                kind = EntryKind.CAPTURE if capture else EntryKind.VOID
                inserted = await core.insert_entry(
                    conn, kind=kind, merchant_id=merchant_id, member_id=hold.member_id,
                    points=hold.points - captured, hold_id=hold_id, now=now, idempotency_key=key,
                    request_hash=fingerprint,
                )
                if inserted is None:  # a concurrent retry took the key, or the merchant was suspended
                    return await outcomes.explain(
                        MerchantSuspended(f"merchant {merchant_id} is suspended: it cannot write to the ledger"))
                entry_id = inserted[0]
                status = HoldStatus.CAPTURED if capture else HoldStatus.VOIDED
                closed = (await conn.execute(
                    update(Hold)
                    .where(Hold.id == hold_id, Hold.status == HoldStatus.AUTHORIZED, Hold.expires_at > now)
                    .values(status=status, captured_points=captured if capture else None, closed_at=now)
                    .returning(Hold)
                )).first()
                if closed is None:
                    # The hold read above may be stale: a racing capture or void can have closed it since.
                    current = (await conn.execute(select(Hold).where(Hold.id == hold_id))).one()
                    hold = hold_from_row(current)
                    if hold.status == HoldStatus.AUTHORIZED:
                        expired_member = hold.member_id
                        raise Conflict(f"the hold expired at {hold.expires_at.isoformat()} and released "
                                       "its points", code="HOLD_EXPIRED", field="holdId")
                    raise Conflict(f"the hold is already {hold.status.value.lower()}",
                                   code="HOLD_ALREADY_CLOSED", field="holdId")
                hold = hold_from_row(closed)
                member = await self._settle_hold(conn, hold, entry_id, captured, now)
        except Conflict as exc:
            if exc.code == "HOLD_EXPIRED" and expired_member is not None:
                await self.release_expired_holds(member_id=expired_member)
            raise
        entry = Entry.from_values(id=entry_id, kind=kind, member_id=hold.member_id, merchant_id=merchant_id,
                                  points=hold.points - captured, hold_id=hold_id, idempotency_key=key,
                                  request_hash=fingerprint, created_at=now)
        return LedgerResult(entry=entry, member=member, hold=hold)

    async def _settle_hold(
        self, conn: AsyncConnection, hold: Hold, entry_id: int, captured: int, now: dt.datetime
    ) -> Member:
        """Move a closed hold's points: ``captured`` honored, the rest back to their lots."""
        released = hold.points - captured
        member = await core.add_to_member(conn, hold.member_id, held=-hold.points, balance=released)
        rows = await conn.execute(
            select(Allocation.lot_id, Allocation.issuer_merchant_id, Allocation.points)
            .where(Allocation.hold_id == hold.id, Allocation.kind == AllocationKind.HOLD)
            .order_by(Allocation.id)
        )
        held_slices = [(r.lot_id, r.issuer_merchant_id, r.points) for r in rows]
        honored = core.take_fifo(held_slices, captured) if captured else []
        taken: dict[int, int] = {}
        for s in honored:
            taken[s.lot_id] = taken.get(s.lot_id, 0) + s.points
        back = [core.Slice(lot, issuer, pts - taken.get(lot, 0)) for lot, issuer, pts in held_slices]
        await core.add_allocations(conn, kind=AllocationKind.CAPTURE, slices=honored, entry_id=entry_id,
                                   member_id=hold.member_id, merchant_id=hold.merchant_id, now=now, hold_id=hold.id)
        await core.add_allocations(conn, kind=AllocationKind.RELEASE, slices=back, entry_id=entry_id,
                                   member_id=hold.member_id, merchant_id=hold.merchant_id, now=now, hold_id=hold.id)
        await core.move_lot_points(conn, {s.lot_id: s.points for s in back})
        await core.add_postings(conn, entry_id, [
            (Account.HELD, hold.member_id, -hold.points),
            (Account.HONORED, hold.merchant_id, captured),
            (Account.MEMBER, hold.member_id, released),
        ])
        return member

    async def release_expired_holds(self, *, member_id: int | None = None, limit: int = 1000) -> int:
        """Void every authorization past its expiry (one transaction each). Returns how many."""
        now = self.clock()
        query = select(Hold.id).where(Hold.status == HoldStatus.AUTHORIZED, Hold.expires_at <= now)
        if member_id is not None:
            query = query.where(Hold.member_id == member_id)
        async with self.db.read() as conn:
            hold_ids = list((await conn.execute(query.order_by(Hold.id).limit(limit))).scalars())
        released = 0
        for hold_id in hold_ids:
            async with self.db.transaction() as conn:
                row = (await conn.execute(
                    update(Hold)
                    .where(Hold.id == hold_id, Hold.status == HoldStatus.AUTHORIZED, Hold.expires_at <= now)
                    .values(status=HoldStatus.EXPIRED, closed_at=now)
                    .returning(Hold)
                )).first()
                if row is None:  # captured, voided or released by someone else meanwhile
                    continue
                hold = hold_from_row(row)
                inserted = await core.insert_entry(
                    conn, kind=EntryKind.VOID, merchant_id=hold.merchant_id,
                    member_id=hold.member_id, points=hold.points, hold_id=hold.id,
                    reference="authorization expired", now=now, idempotency_key=None, request_hash=None,
                    require_active_merchant=False,
                )
                assert inserted is not None
                await self._settle_hold(conn, hold, inserted[0], 0, now)
                released += 1
        return released
