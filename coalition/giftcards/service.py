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
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.errors import (
    MAX_REFERENCE_LENGTH,
    Conflict,
    DomainError,
    IdempotencyKeyConflict,
    InvalidInput,
    NotFound,
    Refused,
    check_idempotency_key,
    check_text,
)
from coalition.giftcards import codes
from coalition.giftcards.errors import (
    AlreadyRefunded,
    GiftCardExpired,
    GiftCardNotFound,
    InsufficientFunds,
    InvalidCode,
)
from coalition.giftcards.guard import GuessGuard
from coalition.ledger import refusals
from coalition.ledger.core import request_hash
from coalition.ledger.giftcard_models import (
    MONEY,
    GiftAccount,
    GiftCard,
    GiftEntry,
    GiftEntryKind,
    GiftHold,
    GiftHoldStatus,
    GiftPosting,
)
from coalition.ledger.inputs import parse_loyalty_id
from coalition.ledger.service import Ledger
from coalition.members.service import find_member
from coalition.partners.models import Merchant, MerchantStatus

Legs = Iterable[tuple[GiftAccount, int, int]]


@dataclass(frozen=True)
class GiftResult:
    """What a gift card write returns: the card after it, its transaction, the hold if any."""

    card: GiftCard
    entry: GiftEntry
    hold: GiftHold | None = None
    code: str | None = None  # only when the card was just issued (shown once)
    replayed: bool = False
    points_earned: int = 0  # a card sold to a member, when the policy lets it earn points


@dataclass(frozen=True)
class Liability:
    """An issuer's outstanding gift card money: what its unexpired and expired-but-held cards still hold."""

    issuer_merchant_id: int
    cards: int
    outstanding_minor: int
    currency: str


class _Raced(Exception):
    """A concurrent request with the same key committed first: roll back and answer with its result."""


def _card(row: Any) -> GiftCard:
    return GiftCard.from_values(**row._mapping)


def _entry(row: Any) -> GiftEntry:
    return GiftEntry.from_values(**row._mapping)


def _hold(row: Any) -> GiftHold:
    return GiftHold.from_values(**row._mapping)


class GiftCards:
    """Gift card operations over one database. Stateless apart from settings, keys and the guess guard."""

    def __init__(self, db: Database, settings: Settings, keys: NetworkKeys, *, guard: GuessGuard | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.settings = settings
        self.keys = keys
        self.guard = guard or GuessGuard.in_process(settings.gift_card_lookup_failures,
                                                    settings.gift_card_lookup_window_s)
        self.clock = clock

    # ------------------------------------------------------------------ input
    def _amount(self, value: object, field: str = "amountMinor") -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{field} must be an integer of minor units", code="INVALID_AMOUNT", field=field)
        if value <= 0:
            raise InvalidInput(f"{field} must be greater than 0, got {value}", code="INVALID_AMOUNT", field=field)
        limit = self.settings.gift_card_max_minor
        if value > limit:
            raise InvalidInput(f"{field} is {value}; a gift card holds at most {limit} minor units",
                               code="INVALID_AMOUNT", field=field)
        return value

    def _currency(self, currency: str | None) -> str:
        if currency is not None and currency.strip().upper() != self.settings.currency:
            raise InvalidInput(f"this network's gift cards are in {self.settings.currency}, not {currency[:8]!r}",
                               code="INVALID_CURRENCY", field="currency")
        return self.settings.currency

    async def _card_hash(self, caller_key: str, raw_code: str) -> str:
        """The stored hash of a code of this network; a malformed or foreign code costs a failure."""
        await self.guard.check(caller_key)
        try:
            compact = codes.parse(self.keys, raw_code)
        except codes.CodeError as error:
            await self.guard.failed(caller_key)
            if error.typo:
                raise InvalidCode(str(error), field="code") from None
            raise GiftCardNotFound("no gift card has this code", field="code") from None
        return codes.code_hash(self.keys, compact)

    # ------------------------------------------------------------------ reads
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
        return _card(row)

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
        return None if row is None else _card(row)

    async def member_cards(self, member_id: int) -> list[GiftCard]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(GiftCard).where(GiftCard.member_id == member_id).order_by(GiftCard.id))
            return [_card(r) for r in rows]

    # ------------------------------------------------------------------ shared steps
    async def _keeping_refusals(self, merchant_id: int, key: str, fingerprint: str, now: dt.datetime,
                                run: Callable[[], Awaitable[GiftResult]]) -> GiftResult:
        try:
            return await run()
        except DomainError as exc:
            if refusals.is_recordable(exc):
                await refusals.record(self.db, merchant_id=merchant_id, key=key, fingerprint=fingerprint,
                                      error=exc, now=now)
            raise

    async def _earlier(self, conn: AsyncConnection, merchant_id: int, key: str, fingerprint: str) -> GiftResult | None:
        row = (await conn.execute(select(GiftEntry).where(GiftEntry.merchant_id == merchant_id,
                                                          GiftEntry.idempotency_key == key))).first()
        if row is None:
            await refusals.raise_if_recorded(conn, merchant_id, key, fingerprint)
            return None
        entry = _entry(row)
        if entry.request_hash != fingerprint:
            raise IdempotencyKeyConflict(key)
        card = _card((await conn.execute(select(GiftCard).where(GiftCard.id == entry.card_id))).one())
        hold = None
        hold_id = entry.id if entry.kind == GiftEntryKind.HOLD else entry.hold_id
        if hold_id is not None:
            hold = _hold((await conn.execute(select(GiftHold).where(GiftHold.id == hold_id))).one())
        return GiftResult(card=card, entry=entry, hold=hold, replayed=True)

    async def _require_active(self, conn: AsyncConnection, merchant_id: int) -> None:
        status = (await conn.execute(select(Merchant.status).where(Merchant.id == merchant_id))).scalar()
        if status != MerchantStatus.ACTIVE:
            raise Refused(f"merchant {merchant_id} is suspended: it cannot write to the ledger",
                          code="MERCHANT_SUSPENDED")

    async def _insert_entry(self, conn: AsyncConnection, **values: Any) -> int | None:
        """Insert the entry unless its key is taken (then None: the caller replays the earlier one)."""
        make_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        values.setdefault("currency", self.settings.currency)
        row = (await conn.execute(make_insert(GiftEntry).values(**values).on_conflict_do_nothing(
            index_elements=["merchant_id", "idempotency_key"]).returning(GiftEntry.id))).first()
        return None if row is None else int(row[0])

    async def _post(self, conn: AsyncConnection, entry_id: int, legs: Legs) -> None:
        rows: list[dict[str, Any]] = [
            {"entry_id": entry_id, "asset": MONEY, "currency": self.settings.currency, "account": account,
             "account_id": account_id, "amount_minor": amount} for account, account_id, amount in legs if amount]
        if sum(r["amount_minor"] for r in rows) != 0:
            raise AssertionError(f"gift card entry {entry_id}: postings do not balance: {rows}")
        if rows:
            await conn.execute(insert(GiftPosting), rows)

    async def _card_for_spend(self, conn: AsyncConnection, digest: str, now: dt.datetime) -> GiftCard:
        row = (await conn.execute(select(GiftCard).where(GiftCard.code_hash == digest))).first()
        if row is None:
            raise GiftCardNotFound("no gift card has this code", field="code")
        card = _card(row)
        if card.expires_at is not None and card.expires_at <= now:
            raise GiftCardExpired(f"gift card …{card.last4} expired at {card.expires_at.isoformat()}", field="code")
        return card

    async def _take(self, conn: AsyncConnection, card: GiftCard, amount: int, now: dt.datetime, *,
                    to_held: bool) -> GiftCard:
        """Take ``amount`` from the card's balance atomically (the conditional UPDATE never overdraws)."""
        values: dict[str, Any] = {"balance_minor": GiftCard.balance_minor - amount}
        if to_held:
            values["held_minor"] = GiftCard.held_minor + amount
        row = (await conn.execute(
            update(GiftCard).where(GiftCard.id == card.id, GiftCard.balance_minor >= amount,
                                   or_(GiftCard.expires_at.is_(None), GiftCard.expires_at > now))
            .values(**values).returning(GiftCard))).first()
        if row is None:
            current = _card((await conn.execute(select(GiftCard).where(GiftCard.id == card.id))).one())
            if current.expires_at is not None and current.expires_at <= now:
                raise GiftCardExpired(f"gift card …{card.last4} expired", field="code")
            raise InsufficientFunds(f"gift card …{card.last4} holds {current.balance_minor} minor units, "
                                    f"{amount} asked", field="amountMinor")
        return _card(row)

    async def _add_to_card(self, conn: AsyncConnection, card_id: int, *, balance: int = 0, held: int = 0) -> GiftCard:
        row = (await conn.execute(update(GiftCard).where(GiftCard.id == card_id).values(
            balance_minor=GiftCard.balance_minor + balance, held_minor=GiftCard.held_minor + held,
        ).returning(GiftCard))).one()
        return _card(row)

    # ------------------------------------------------------------------ issue
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
                    idempotency_key="gift-card-sale:" + hashlib.sha256(key.encode()).hexdigest()[:48])
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
        except _Raced:
            async with self.db.read() as conn:
                earlier = await self._earlier(conn, merchant_id, key, fingerprint)
            assert earlier is not None
            return earlier

    async def _issue_in_tx(self, merchant_id: int, amount: int, key: str, fingerprint: str, reference: str | None,
                           now: dt.datetime, code: str, compact: str, expires_at: dt.datetime | None,
                           member_id: int | None) -> GiftResult:
        async with self.db.transaction() as conn:
            earlier = await self._earlier(conn, merchant_id, key, fingerprint)
            if earlier is not None:
                return earlier
            await self._require_active(conn, merchant_id)
            card = _card((await conn.execute(insert(GiftCard).values(
                code_hash=codes.code_hash(self.keys, compact), last4=codes.last4(compact),
                currency=self.settings.currency, issuer_merchant_id=merchant_id, initial_minor=amount,
                balance_minor=amount, held_minor=0, expires_at=expires_at, member_id=member_id, created_at=now,
            ).returning(GiftCard))).one())
            entry_id = await self._insert_entry(
                conn, kind=GiftEntryKind.ISSUE, card_id=card.id, issuer_merchant_id=merchant_id,
                merchant_id=merchant_id, amount_minor=amount, spent_minor=0, reference=reference,
                idempotency_key=key, request_hash=fingerprint, created_at=now)
            if entry_id is None:  # a concurrent retry with the key won: roll this card back
                raise _Raced
            await self._post(conn, entry_id, [(GiftAccount.CASH, merchant_id, -amount),
                                              (GiftAccount.CARD, card.id, amount)])
            entry = _entry((await conn.execute(select(GiftEntry).where(GiftEntry.id == entry_id))).one())
        return GiftResult(card=card, entry=entry, code=code)

    # ------------------------------------------------------------------ spend, hold
    async def redeem(self, *, merchant_id: int, caller_key: str, code: str, amount_minor: int, idempotency_key: str,
                     reference: str | None = None, currency: str | None = None) -> GiftResult:
        """Spend ``amount_minor`` of the card at ``merchant_id`` (any partner); partial spends leave the rest."""
        return await self._spend(merchant_id, caller_key, code, amount_minor, idempotency_key, reference, currency,
                                 hold_expires_in_s=None)

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

    async def _spend(self, merchant_id: int, caller_key: str, code: str, amount_minor: int, idempotency_key: str,
                     reference: str | None, currency: str | None, *, hold_expires_in_s: int | None) -> GiftResult:
        key = check_idempotency_key(idempotency_key)
        amount = self._amount(amount_minor)
        self._currency(currency)
        reference = check_text(reference, "reference", MAX_REFERENCE_LENGTH)
        digest = await self._card_hash(caller_key, code)
        operation = "gift_redeem" if hold_expires_in_s is None else "gift_authorize"
        fingerprint = request_hash(operation, card=digest, amount=amount, reference=reference,
                                   expires_in_s=hold_expires_in_s)
        now = self.clock()
        try:
            return await self._keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._spend_in_tx(
                merchant_id, digest, amount, key, fingerprint, reference, hold_expires_in_s, now))
        except GiftCardNotFound:
            await self.guard.failed(caller_key)
            raise

    async def _spend_in_tx(self, merchant_id: int, digest: str, amount: int, key: str, fingerprint: str,
                           reference: str | None, hold_expires_in_s: int | None, now: dt.datetime) -> GiftResult:
        hold_kind = hold_expires_in_s is not None
        async with self.db.transaction() as conn:
            earlier = await self._earlier(conn, merchant_id, key, fingerprint)
            if earlier is not None:
                return earlier
            await self._require_active(conn, merchant_id)
            card = await self._card_for_spend(conn, digest, now)
            entry_id = await self._insert_entry(
                conn, kind=GiftEntryKind.HOLD if hold_kind else GiftEntryKind.REDEEM, card_id=card.id,
                issuer_merchant_id=card.issuer_merchant_id, merchant_id=merchant_id, amount_minor=-amount,
                spent_minor=0 if hold_kind else amount, reference=reference, idempotency_key=key,
                request_hash=fingerprint, created_at=now)
            if entry_id is None:
                earlier = await self._earlier(conn, merchant_id, key, fingerprint)
                assert earlier is not None
                return earlier
            card = await self._take(conn, card, amount, now, to_held=hold_kind)
            hold = None
            if hold_expires_in_s is not None:
                hold = _hold((await conn.execute(insert(GiftHold).values(
                    id=entry_id, card_id=card.id, merchant_id=merchant_id, amount_minor=amount,
                    status=GiftHoldStatus.AUTHORIZED, expires_at=now + dt.timedelta(seconds=hold_expires_in_s),
                    created_at=now).returning(GiftHold))).one())
                await self._post(conn, entry_id, [(GiftAccount.CARD, card.id, -amount),
                                                  (GiftAccount.CARD_HELD, card.id, amount)])
            else:
                await self._post(conn, entry_id, [(GiftAccount.CARD, card.id, -amount),
                                                  (GiftAccount.SPENT, merchant_id, amount)])
            entry = _entry((await conn.execute(select(GiftEntry).where(GiftEntry.id == entry_id))).one())
        return GiftResult(card=card, entry=entry, hold=hold)

    # ------------------------------------------------------------------ capture, void
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
            earlier = await self._earlier(conn, merchant_id, key, fingerprint)
            if earlier is not None:
                return earlier
            row = (await conn.execute(select(GiftHold).where(GiftHold.id == hold_id,
                                                             GiftHold.merchant_id == merchant_id))).first()
            if row is None:
                raise NotFound("this merchant has no such gift card hold: pass the hold authorizeGiftCard returned",
                               code="HOLD_NOT_FOUND", field="holdId")
            hold = _hold(row)
            captured = (amount if amount is not None else hold.amount_minor) if capture else 0
            if captured > hold.amount_minor:
                raise Refused(f"the hold reserves {hold.amount_minor} minor units, {captured} asked",
                              code="CAPTURE_EXCEEDS_HOLD", field="amountMinor")
            await self._require_active(conn, merchant_id)
            card_row = (await conn.execute(select(GiftCard.issuer_merchant_id).where(GiftCard.id == hold.card_id)))
            issuer = int(card_row.scalar_one())
            released = hold.amount_minor - captured
            entry_id = await self._insert_entry(
                conn, kind=GiftEntryKind.CAPTURE if capture else GiftEntryKind.VOID, card_id=hold.card_id,
                issuer_merchant_id=issuer, merchant_id=merchant_id, amount_minor=released, spent_minor=captured,
                hold_id=hold_id, idempotency_key=key, request_hash=fingerprint, created_at=now)
            if entry_id is None:
                earlier = await self._earlier(conn, merchant_id, key, fingerprint)
                assert earlier is not None
                return earlier
            closed = (await conn.execute(
                update(GiftHold).where(GiftHold.id == hold_id, GiftHold.status == GiftHoldStatus.AUTHORIZED,
                                       GiftHold.expires_at > now)
                .values(status=GiftHoldStatus.CAPTURED if capture else GiftHoldStatus.VOIDED,
                        captured_minor=captured if capture else None, closed_at=now)
                .returning(GiftHold))).first()
            if closed is None:
                current = _hold((await conn.execute(select(GiftHold).where(GiftHold.id == hold_id))).one())
                if current.status == GiftHoldStatus.AUTHORIZED:
                    raise Conflict(f"the hold expired at {current.expires_at.isoformat()} and released its money",
                                   code="HOLD_EXPIRED", field="holdId")
                raise Conflict(f"the hold is already {current.status.value.lower()}", code="HOLD_ALREADY_CLOSED",
                               field="holdId")
            hold = _hold(closed)
            card = await self._settle_hold(conn, hold, entry_id, captured)
            entry = _entry((await conn.execute(select(GiftEntry).where(GiftEntry.id == entry_id))).one())
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
                hold = _hold(row)
                issuer = int((await conn.execute(select(GiftCard.issuer_merchant_id).where(
                    GiftCard.id == hold.card_id))).scalar_one())
                entry_id = await self._insert_entry(
                    conn, kind=GiftEntryKind.VOID, card_id=hold.card_id, issuer_merchant_id=issuer,
                    merchant_id=hold.merchant_id, amount_minor=hold.amount_minor, spent_minor=0, hold_id=hold.id,
                    reference="authorization expired", idempotency_key=None, request_hash=None, created_at=now)
                assert entry_id is not None
                await self._settle_hold(conn, hold, entry_id, 0)
                released += 1
        return released

    # ------------------------------------------------------------------ refund
    async def refund(self, *, merchant_id: int, entry_id: int, idempotency_key: str,
                     reason: str | None = None) -> GiftResult:
        """Give one of this merchant's spends (REDEEM, or CAPTURE's spent part) back to the card, once."""
        key = check_idempotency_key(idempotency_key)
        reason = check_text(reason, "reason", MAX_REFERENCE_LENGTH)
        fingerprint = request_hash("gift_refund", entry_id=entry_id, reason=reason)
        now = self.clock()
        try:
            return await self._keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._refund(
                merchant_id, entry_id, key, fingerprint, reason, now))
        except IntegrityError:  # a concurrent refund of the same spend won (the unique reverses_id)
            raise AlreadyRefunded("this spend was refunded already", field="transactionId") from None

    async def _refund(self, merchant_id: int, entry_id: int, key: str, fingerprint: str, reason: str | None,
                      now: dt.datetime) -> GiftResult:
        async with self.db.transaction() as conn:
            earlier = await self._earlier(conn, merchant_id, key, fingerprint)
            if earlier is not None:
                return earlier
            row = (await conn.execute(select(GiftEntry).where(GiftEntry.id == entry_id,
                                                              GiftEntry.merchant_id == merchant_id))).first()
            if row is None:
                raise NotFound("this merchant has no such gift card transaction", code="TRANSACTION_NOT_FOUND",
                               field="transactionId")
            original = _entry(row)
            if original.kind not in (GiftEntryKind.REDEEM, GiftEntryKind.CAPTURE) or original.spent_minor <= 0:
                raise Refused(f"a {original.kind.value} is not a spend: only spends go back to the card "
                              "(a hold is voided)", code="NOT_REFUNDABLE", field="transactionId")
            done = (await conn.execute(select(GiftEntry.id).where(GiftEntry.reverses_id == entry_id))).first()
            if done is not None:
                raise AlreadyRefunded("this spend was refunded already", field="transactionId")
            await self._require_active(conn, merchant_id)
            amount = original.spent_minor
            new_id = await self._insert_entry(
                conn, kind=GiftEntryKind.REFUND, card_id=original.card_id,
                issuer_merchant_id=original.issuer_merchant_id, merchant_id=merchant_id, amount_minor=amount,
                spent_minor=-amount, reference=reason, reverses_id=entry_id, idempotency_key=key,
                request_hash=fingerprint, created_at=now)
            if new_id is None:
                earlier = await self._earlier(conn, merchant_id, key, fingerprint)
                assert earlier is not None
                return earlier
            card = await self._add_to_card(conn, original.card_id, balance=amount)
            await self._post(conn, new_id, [(GiftAccount.SPENT, merchant_id, -amount),
                                            (GiftAccount.CARD, original.card_id, amount)])
            entry = _entry((await conn.execute(select(GiftEntry).where(GiftEntry.id == new_id))).one())
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
                card = _card(row)
                taken = (await conn.execute(
                    update(GiftCard).where(GiftCard.id == card_id, GiftCard.balance_minor == card.balance_minor,
                                           GiftCard.balance_minor > 0)
                    .values(balance_minor=0, expired_at=now).returning(GiftCard.id))).first()
                if taken is None:  # spent or refunded meanwhile: the next sweep sees it again
                    continue
                entry_id = await self._insert_entry(
                    conn, kind=GiftEntryKind.EXPIRY, card_id=card_id, issuer_merchant_id=card.issuer_merchant_id,
                    merchant_id=None, amount_minor=-card.balance_minor, spent_minor=0, reference="card expired",
                    idempotency_key=None, request_hash=None, created_at=now)
                assert entry_id is not None
                await self._post(conn, entry_id, [(GiftAccount.CARD, card_id, -card.balance_minor),
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
        return _card(row)
