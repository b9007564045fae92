"""Gift card writes and reads: issue, spend, hold/capture/void, refund, expire, look up.

Every write is one transaction that inserts its entry first (the unique merchant and
idempotency key: a retry finds it and gets the original result), then moves money with a
conditional UPDATE of the card row (``balance_minor >= amount``): concurrent spends of one
card queue on that row and none can overdraw it, and the table's CHECK is the last line.
Refusals met after the input was checked are kept under the key (``ledger/refusals.py``),
as for points. Postings (asset MONEY) sum to zero per entry:

==========  ==============================================================
ISSUE       CASH[issuer] -a, CARD[card] +a
REDEEM      CARD -a, SPENT[merchant] +a
HOLD        CARD -a, CARD_HELD +a
CAPTURE     CARD_HELD -a, SPENT[merchant] +c, CARD +(a - c)
VOID        CARD_HELD -a, CARD +a
REFUND      SPENT[merchant] -s, CARD +s            (a spend given back to the card)
EXPIRY      CARD -b, BREAKAGE[issuer] +b
==========  ==============================================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from sqlalchemy import func, insert, or_, select, update

from coalition.errors import (
    MAX_REFERENCE_LENGTH,
    IdempotencyKeyConflict,
    NotFound,
    Refused,
    check_idempotency_key,
    check_text,
)
from coalition.giftcards import codes
from coalition.giftcards.base import (
    ENTRY_KEYS,
    GiftCardsBase,
    GiftResult,
    Liability,
    Raced,
    card_from_row,
    entry_from_row,
)
from coalition.giftcards.errors import (
    AlreadyRefunded,
    GiftCardNotFound,
    InvalidCode,
)
from coalition.giftcards.holds import GiftHolds
from coalition.giftcards.models import (
    GiftAccount,
    GiftCard,
    GiftEntry,
    GiftEntryKind,
)
from coalition.ledger.core import request_hash
from coalition.ledger.idempotency import GIFT_CARD_EARN_PREFIX, find_earlier
from coalition.ledger.inputs import parse_loyalty_id
from coalition.ledger.service import Ledger
from coalition.members.service import find_member

__all__ = ["GiftCards", "GiftCardsBase", "GiftResult", "Liability"]


class GiftCards(GiftHolds):
    """Gift card operations: sell, spend, hold (``GiftHolds``), refund, expire, wallet, reads."""

    async def look_up(self, *, caller_key: str, code: str) -> GiftCard | None:
        """The card with this code, or None (a failed look-up, counted against the caller)."""
        try:
            digest = await self._card_hash(caller_key, code)
        except (InvalidCode, GiftCardNotFound):
            return None
        async with self.db.read() as conn:
            row = (await conn.execute(select(GiftCard).where(GiftCard.code_hash == digest))).first()
        if row is None:
            await self.guard.failed(caller_key)
            return None
        return card_from_row(row)

    async def liabilities(self, *, issuer_merchant_id: int | None = None) -> list[Liability]:
        """Unspent money per issuer (balance and held): the issuer's liability. None: every issuer."""
        query = (select(GiftCard.issuer_merchant_id, GiftCard.currency, func.count(),
                        func.coalesce(func.sum(GiftCard.balance_minor + GiftCard.held_minor), 0))
                 .group_by(GiftCard.issuer_merchant_id, GiftCard.currency).order_by(GiftCard.issuer_merchant_id))
        if issuer_merchant_id is not None:
            query = query.where(GiftCard.issuer_merchant_id == issuer_merchant_id)
        async with self.db.read() as conn:
            rows = list(await conn.execute(query))
        return [Liability(issuer, int(n), int(total), currency) for issuer, currency, n, total in rows]

    async def card_by_id(self, card_id: int) -> GiftCard | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(GiftCard).where(GiftCard.id == card_id))).first()
        return None if row is None else card_from_row(row)

    async def member_cards(self, member_id: int) -> list[GiftCard]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(GiftCard).where(GiftCard.member_id == member_id).order_by(GiftCard.id))
            return [card_from_row(r) for r in rows]


    async def issue(self, *, merchant_id: int, amount_minor: int, idempotency_key: str, reference: str | None = None,
                    currency: str | None = None, loyalty_id: str | None = None) -> GiftResult:
        """Sell a card at ``merchant_id``'s till; the result's ``code`` is shown this once only.

        A retry with the same key returns the card but not the code (it is not stored): the
        till that lost the answer voids the sale with its POS and issues a new card. With
        ``loyalty_id`` the card goes to that member's wallet and, when the network's policy
        says so (``COALITION_GIFT_CARD_EARNS_POINTS``), earns points like a purchase of its amount,
        under a key derived from this one: a retry replays both.
        """
        key = check_idempotency_key(idempotency_key)
        amount = self._amount(amount_minor)
        currency_code = self._currency(currency)
        reference = check_text(reference, "reference", MAX_REFERENCE_LENGTH)
        lid = None if loyalty_id is None else parse_loyalty_id(loyalty_id)
        fingerprint = request_hash("gift_issue", amount=amount, reference=reference, currency=currency_code,
                                   loyalty_id=lid)
        now = self.clock()

        async def run() -> GiftResult:
            member_id, points = None, 0
            if lid is not None and self.settings.gift_card_earns_points:
                earned = await Ledger(self.db, self.settings, self.clock, keys=self.keys).earn(
                    merchant_id=merchant_id, loyalty_id=lid, purchase_amount_minor=amount, reference=reference,
                    idempotency_key=GIFT_CARD_EARN_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:48])
                member_id, points = earned.member.id, earned.entry.points
            elif lid is not None:
                member_id = (await find_member(self.db, lid)).id
            result = await self._issue(merchant_id, amount, key, fingerprint, reference, now, member_id)
            return dataclasses.replace(result, points_earned=points)

        return await self._keeping_refusals(merchant_id, key, fingerprint, now, run)

    async def _issue(self, merchant_id: int, amount: int, key: str, fingerprint: str, reference: str | None,
                     now: dt.datetime, member_id: int | None = None) -> GiftResult:
        code = codes.new_code(self.keys)
        compact = codes.normalize(code)
        days = self.settings.gift_card_expiry_days
        expires_at = now + dt.timedelta(days=days) if days else None
        try:
            return await self._issue_in_tx(merchant_id, amount, key, fingerprint, reference, now, code, compact,
                                            expires_at, member_id)
        except Raced:
            async with self.db.read() as conn:
                earlier = await self._earlier(conn, merchant_id, key, fingerprint)
            assert earlier is not None
            return earlier

    async def _issue_in_tx(self, merchant_id: int, amount: int, key: str, fingerprint: str, reference: str | None,
                           now: dt.datetime, code: str, compact: str, expires_at: dt.datetime | None,
                           member_id: int | None) -> GiftResult:
        async with self.db.transaction() as conn:
            outcomes = self.outcomes(conn, merchant_id, key, fingerprint)
            if (earlier := await outcomes.earlier()) is not None:
                return earlier
            await outcomes.check_merchant()
            card = card_from_row((await conn.execute(insert(GiftCard).values(
                code_hash=codes.code_hash(self.keys, compact), last4=codes.last4(compact),
                currency=self.settings.currency, issuer_merchant_id=merchant_id, initial_minor=amount,
                balance_minor=amount, held_minor=0, expires_at=expires_at, member_id=member_id, created_at=now,
            ).returning(GiftCard))).one())
            entry, inserted = await self._insert_entry(
                conn, kind=GiftEntryKind.ISSUE, card_id=card.id, issuer_merchant_id=merchant_id,
                merchant_id=merchant_id, amount_minor=amount, spent_minor=0, reference=reference,
                idempotency_key=key, request_hash=fingerprint, created_at=now)
            if not inserted:  # a concurrent retry with the key won: roll this card back
                raise Raced
            await self._post(conn, entry.id, [(GiftAccount.CASH, merchant_id, -amount),
                                              (GiftAccount.CARD, card.id, amount)])
        return GiftResult(card=card, entry=entry, code=code)

    # ------------------------------------------------------------------ spend (holds: GiftHolds)
    async def redeem(self, *, merchant_id: int, caller_key: str, code: str, amount_minor: int, idempotency_key: str,
                     reference: str | None = None, currency: str | None = None) -> GiftResult:
        """Spend ``amount_minor`` of the card at ``merchant_id`` (any partner); partial spends leave the rest."""
        return await self._spend(merchant_id, caller_key, code, amount_minor, idempotency_key, reference, currency,
                                 hold_expires_in_s=None)

    async def refund(self, *, merchant_id: int, entry_id: int, idempotency_key: str,
                     reason: str | None = None) -> GiftResult:
        """Give one of this merchant's spends (REDEEM, or CAPTURE's spent part) back to the card, once."""
        key = check_idempotency_key(idempotency_key)
        reason = check_text(reason, "reason", MAX_REFERENCE_LENGTH)
        fingerprint = request_hash("gift_refund", entry_id=entry_id, reason=reason)
        now = self.clock()
        return await self._keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._refund(
            merchant_id, entry_id, key, fingerprint, reason, now))

    async def _refund(self, merchant_id: int, entry_id: int, key: str, fingerprint: str, reason: str | None,
                      now: dt.datetime) -> GiftResult:
        async with self.db.transaction() as conn:
            outcomes = self.outcomes(conn, merchant_id, key, fingerprint)
            if (earlier := await outcomes.earlier()) is not None:
                return earlier
            original = entry_from_row(await outcomes.found(
                (await conn.execute(select(GiftEntry).where(GiftEntry.id == entry_id,
                                                            GiftEntry.merchant_id == merchant_id))).first(),
                NotFound("this merchant has no such gift card transaction", code="TRANSACTION_NOT_FOUND",
                         field="transactionId")))
            await outcomes.check_merchant()
            if original.kind not in (GiftEntryKind.REDEEM, GiftEntryKind.CAPTURE) or original.spent_minor <= 0:
                raise Refused(f"a {original.kind.value} is not a spend: only spends go back to the card "
                              "(a hold is voided)", code="NOT_REFUNDABLE", field="transactionId")
            already = AlreadyRefunded("this spend was refunded already", field="transactionId")
            if (await conn.execute(select(GiftEntry.id).where(GiftEntry.reverses_id == entry_id))).first():
                raise already
            amount = original.spent_minor
            try:
                entry, inserted = await self._insert_entry(
                    conn, kind=GiftEntryKind.REFUND, card_id=original.card_id,
                    issuer_merchant_id=original.issuer_merchant_id, merchant_id=merchant_id, amount_minor=amount,
                    spent_minor=-amount, reference=reason, reverses_id=entry_id, idempotency_key=key,
                    request_hash=fingerprint, created_at=now)
            except IdempotencyKeyConflict:
                # Nothing went in and nothing is under the key: a concurrent refund of the spend won
                # (the unique reverses_id) -- unless other input took the key meanwhile (raised again here).
                if await find_earlier(conn, ENTRY_KEYS, (merchant_id,), key, fingerprint) is None:
                    raise already from None
                raise
            if not inserted:  # a concurrent retry with the key won
                return await self._replay(conn, entry)
            card = await self._add_to_card(conn, original.card_id, balance=amount)
            await self._post(conn, entry.id, [(GiftAccount.SPENT, merchant_id, -amount),
                                              (GiftAccount.CARD, original.card_id, amount)])
        return GiftResult(card=card, entry=entry)

    # ------------------------------------------------------------------ expiry, members
    async def expire_cards(self, *, limit: int = 1000) -> int:
        """Take the balance of every card past its expiry as its issuer's breakage. Returns how many."""
        now = self.clock()
        async with self.db.read() as conn:
            ids = list((await conn.execute(select(GiftCard.id).where(
                GiftCard.expires_at.is_not(None), GiftCard.expires_at <= now, GiftCard.balance_minor > 0)
                .order_by(GiftCard.id).limit(limit))).scalars())
        expired = 0
        for card_id in ids:
            async with self.db.transaction() as conn:
                row = (await conn.execute(select(GiftCard).where(GiftCard.id == card_id))).one()
                card = card_from_row(row)
                taken = (await conn.execute(
                    update(GiftCard).where(GiftCard.id == card_id, GiftCard.balance_minor == card.balance_minor,
                                           GiftCard.balance_minor > 0)
                    .values(balance_minor=0, expired_at=now).returning(GiftCard.id))).first()
                if taken is None:  # spent or refunded meanwhile: the next sweep sees it again
                    continue
                entry, _ = await self._insert_entry(
                    conn, kind=GiftEntryKind.EXPIRY, card_id=card_id, issuer_merchant_id=card.issuer_merchant_id,
                    merchant_id=None, amount_minor=-card.balance_minor, spent_minor=0, reference="card expired",
                    idempotency_key=None, request_hash=None, created_at=now)
                await self._post(conn, entry.id, [(GiftAccount.CARD, card_id, -card.balance_minor),
                                                  (GiftAccount.BREAKAGE, card.issuer_merchant_id,
                                                   card.balance_minor)])
                expired += 1
        return expired

    async def attach(self, *, member_id: int, code: str, caller_key: str | None = None) -> GiftCard:
        """Put the card with this code in the member's wallet (a card is one member's at most).

        ``caller_key``: whose failed look-ups a wrong code counts against (default: the member's)."""
        caller_key = caller_key or f"MEMBER:{member_id}"
        digest = await self._card_hash(caller_key, code)
        async with self.db.transaction() as conn:
            row = (await conn.execute(
                update(GiftCard).where(GiftCard.code_hash == digest,
                                       or_(GiftCard.member_id.is_(None), GiftCard.member_id == member_id))
                .values(member_id=member_id).returning(GiftCard))).first()
            if row is None:
                taken = (await conn.execute(select(GiftCard.id).where(GiftCard.code_hash == digest))).first()
                if taken is not None:
                    raise Refused("this gift card is in another member's wallet", code="GIFT_CARD_ATTACHED",
                                  field="code")
        if row is None:
            await self.guard.failed(caller_key)
            raise GiftCardNotFound("no gift card has this code", field="code")
        return card_from_row(row)

