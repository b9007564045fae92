"""Two-phase gift card spends: authorize -> capture (all or part) | void | expire."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import note_change
from coalition.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Refused,
    check_idempotency_key,
)
from coalition.giftcards.base import GiftCardsBase, GiftResult, hold_from_row, redeemed_change
from coalition.giftcards.models import (
    GiftAccount,
    GiftCard,
    GiftEntryKind,
    GiftHold,
    GiftHoldStatus,
)
from coalition.ledger.core import request_hash


class GiftHolds(GiftCardsBase):
    async def authorize(self, *, merchant_id: int, caller_key: str, code: str, amount_minor: int,
                        idempotency_key: str, expires_in_s: int | None = None, reference: str | None = None,
                        currency: str | None = None) -> GiftResult:
        """Reserve money on the card for a later capture; it comes back by itself after ``expires_in_s``."""
        if expires_in_s is None:
            expires_in_s = self.settings.default_hold_expiry_s
        if isinstance(expires_in_s, bool) or not 1 <= expires_in_s <= self.settings.max_hold_expiry_s:
            raise InvalidInput(f"expiresInSeconds must be between 1 and {self.settings.max_hold_expiry_s}, "
                               f"got {expires_in_s}", code="INVALID_EXPIRY", field="expiresInSeconds")
        return await self._spend(merchant_id, caller_key, code, amount_minor, idempotency_key, reference, currency,
                                 hold_expires_in_s=expires_in_s)

    async def capture(self, *, merchant_id: int, hold_id: int, idempotency_key: str,
                      amount_minor: int | None = None) -> GiftResult:
        """Spend ``amount_minor`` of the hold (all of it by default) and release the rest to the card."""
        key = check_idempotency_key(idempotency_key)
        if amount_minor is not None:
            amount_minor = self._amount(amount_minor)
        return await self._close(merchant_id, hold_id, key, amount_minor, capture=True)

    async def void(self, *, merchant_id: int, hold_id: int, idempotency_key: str) -> GiftResult:
        """Release the whole hold back to the card."""
        key = check_idempotency_key(idempotency_key)
        return await self._close(merchant_id, hold_id, key, None, capture=False)

    async def _close(self, merchant_id: int, hold_id: int, key: str, amount: int | None, *,
                     capture: bool) -> GiftResult:
        fingerprint = request_hash("gift_capture" if capture else "gift_void", hold_id=hold_id, amount=amount)
        now = self.clock()
        try:
            return await self._keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._close_in_tx(
                merchant_id, hold_id, key, fingerprint, amount, now, capture=capture))
        except Conflict as exc:
            if exc.code == "HOLD_EXPIRED":
                await self.release_expired_holds()
            raise

    async def _close_in_tx(self, merchant_id: int, hold_id: int, key: str, fingerprint: str, amount: int | None,
                           now: dt.datetime, *, capture: bool) -> GiftResult:
        async with self.db.transaction() as conn:
            outcomes = self.outcomes(conn, merchant_id, key, fingerprint)
            if (earlier := await outcomes.earlier()) is not None:
                return earlier
            hold = hold_from_row(await outcomes.found(
                (await conn.execute(select(GiftHold).where(GiftHold.id == hold_id,
                                                           GiftHold.merchant_id == merchant_id))).first(),
                NotFound("this merchant has no such gift card hold: pass the hold authorizeGiftCard returned",
                         code="HOLD_NOT_FOUND", field="holdId")))
            await outcomes.check_merchant()
            captured = (amount if amount is not None else hold.amount_minor) if capture else 0
            if captured > hold.amount_minor:
                raise Refused(f"the hold reserves {hold.amount_minor} minor units, {captured} asked",
                              code="CAPTURE_EXCEEDS_HOLD", field="amountMinor")
            card_row = (await conn.execute(select(GiftCard.issuer_merchant_id).where(GiftCard.id == hold.card_id)))
            issuer = int(card_row.scalar_one())
            released = hold.amount_minor - captured
            entry, inserted = await self._insert_entry(
                conn, kind=GiftEntryKind.CAPTURE if capture else GiftEntryKind.VOID, card_id=hold.card_id,
                issuer_merchant_id=issuer, merchant_id=merchant_id, amount_minor=released, spent_minor=captured,
                hold_id=hold_id, idempotency_key=key, request_hash=fingerprint, created_at=now)
            if not inserted:  # a concurrent retry with the key won
                return await self._replay(conn, entry)
            closed = (await conn.execute(
                update(GiftHold).where(GiftHold.id == hold_id, GiftHold.status == GiftHoldStatus.AUTHORIZED,
                                       GiftHold.expires_at > now)
                .values(status=GiftHoldStatus.CAPTURED if capture else GiftHoldStatus.VOIDED,
                        captured_minor=captured if capture else None, closed_at=now)
                .returning(GiftHold))).first()
            if closed is None:
                current = hold_from_row((await conn.execute(select(GiftHold).where(GiftHold.id == hold_id))).one())
                if current.status == GiftHoldStatus.AUTHORIZED:
                    raise Conflict(f"the hold expired at {current.expires_at.isoformat()} and released its money",
                                   code="HOLD_EXPIRED", field="holdId")
                raise Conflict(f"the hold is already {current.status.value.lower()}", code="HOLD_ALREADY_CLOSED",
                               field="holdId")
            hold = hold_from_row(closed)
            card = await self._settle_hold(conn, hold, entry.id, captured)
            if captured:
                note_change(lambda: redeemed_change(entry, card))
        return GiftResult(card=card, entry=entry, hold=hold)

    async def _settle_hold(self, conn: AsyncConnection, hold: GiftHold, entry_id: int, captured: int) -> GiftCard:
        released = hold.amount_minor - captured
        card = await self._add_to_card(conn, hold.card_id, balance=released, held=-hold.amount_minor)
        await self._post(conn, entry_id, [(GiftAccount.CARD_HELD, hold.card_id, -hold.amount_minor),
                                          (GiftAccount.SPENT, hold.merchant_id, captured),
                                          (GiftAccount.CARD, hold.card_id, released)])
        return card

    async def release_expired_holds(self, *, limit: int = 1000) -> int:
        """Void every gift card authorization past its expiry (one transaction each). Returns how many."""
        now = self.clock()
        async with self.db.read() as conn:
            ids = list((await conn.execute(select(GiftHold.id).where(
                GiftHold.status == GiftHoldStatus.AUTHORIZED, GiftHold.expires_at <= now)
                .order_by(GiftHold.id).limit(limit))).scalars())
        released = 0
        for hold_id in ids:
            async with self.db.transaction() as conn:
                row = (await conn.execute(
                    update(GiftHold).where(GiftHold.id == hold_id, GiftHold.status == GiftHoldStatus.AUTHORIZED,
                                           GiftHold.expires_at <= now)
                    .values(status=GiftHoldStatus.EXPIRED, closed_at=now).returning(GiftHold))).first()
                if row is None:
                    continue
                hold = hold_from_row(row)
                issuer = int((await conn.execute(select(GiftCard.issuer_merchant_id).where(
                    GiftCard.id == hold.card_id))).scalar_one())
                entry, _ = await self._insert_entry(
                    conn, kind=GiftEntryKind.VOID, card_id=hold.card_id, issuer_merchant_id=issuer,
                    merchant_id=hold.merchant_id, amount_minor=hold.amount_minor, spent_minor=0, hold_id=hold.id,
                    reference="authorization expired", idempotency_key=None, request_hash=None, created_at=now)
                await self._settle_hold(conn, hold, entry.id, 0)
                released += 1
        return released

