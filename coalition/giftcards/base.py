"""What every gift card operation shares: input checks, the idempotent entry, postings, spending.

Spending (redeem and authorize) is here: one transaction that inserts its entry first (the
unique merchant and idempotency key: a retry finds it and gets the original result), then
moves money with a conditional UPDATE of the card row (``balance_minor >= amount``), so
concurrent spends of one card queue on that row and none can overdraw it. On PostgreSQL a
spend or authorization first tries the one-statement path (``giftcards/fastpath.py``), which
hands anything unusual back here. Every write orders its outcomes with
``ledger.idempotency.Outcomes`` (replay, conflict, suspended, not found, its own refusals) and
inserts its entry with ``insert_once``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Change, Database, note_change, utcnow
from coalition.errors import (
    MAX_REFERENCE_LENGTH,
    DomainError,
    InvalidInput,
    check_idempotency_key,
    check_text,
)
from coalition.giftcards import codes, fastpath
from coalition.giftcards.errors import (
    GiftCardExpired,
    GiftCardNotFound,
    InsufficientFunds,
    InvalidCode,
)
from coalition.giftcards.guard import GuessGuard
from coalition.giftcards.models import (
    MONEY,
    GiftAccount,
    GiftCard,
    GiftEntry,
    GiftEntryKind,
    GiftHold,
    GiftHoldStatus,
    GiftPosting,
)
from coalition.ledger import refusals
from coalition.ledger.core import request_hash
from coalition.ledger.idempotency import KeyColumns, Outcomes, find_earlier, insert_once

Legs = Iterable[tuple[GiftAccount, int, int]]
GIFT_REDEEMED = "giftcard.redeemed"

ENTRY_KEYS = KeyColumns(GiftEntry, key="idempotency_key", fingerprint="request_hash", scope=("merchant_id",))


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


class Raced(Exception):
    """A concurrent request with the same key committed first: roll back and answer with its result."""


def card_from_row(row: Any) -> GiftCard:
    return GiftCard.from_values(**row._mapping)


def entry_from_row(row: Any) -> GiftEntry:
    return GiftEntry.from_values(**row._mapping)


def hold_from_row(row: Any) -> GiftHold:
    return GiftHold.from_values(**row._mapping)



def redeemed_change(entry: GiftEntry, card: GiftCard) -> Change:
    """The ``giftcard.redeemed`` event of a spend or a capture, for the merchant where the card was
    spent: the card's id and last four characters, never its code (``giftcards/fastpath.py``
    writes the same row in its statement)."""
    return Change(GIFT_REDEEMED, entry.merchant_id, None, entry.created_at, {
        "gift_entry_id": entry.id, "kind": entry.kind.value, "card_id": card.id, "last4": card.last4,
        "amount_minor": entry.spent_minor, "currency": entry.currency, "reference": entry.reference,
        "hold_id": entry.hold_id,
    })


class GiftCardsBase:
    """Gift card operations over one database. Stateless apart from settings, keys and the guess guard."""

    def __init__(self, db: Database, settings: Settings, keys: NetworkKeys, *, guard: GuessGuard | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.settings = settings
        self.keys = keys
        self.guard = guard or GuessGuard.in_process(settings.gift_card_lookup_failures,
                                                    settings.gift_card_lookup_window_s)
        self.clock = clock
        # PostgreSQL spends and authorizes as one statement (giftcards/fastpath.py), batched with the
        # concurrent ones, and falls back to the multi-statement path for anything else; SQLite runs
        # only the latter.
        self.fast_path = not db.is_sqlite
        self.fast = fastpath.GiftFastPath(db, max_in_flight=settings.ledger_batches_in_flight)

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

    def outcomes(self, conn: AsyncConnection, merchant_id: int, key: str, fingerprint: str) -> Outcomes[GiftResult]:
        """The precedence of a gift card write's outcomes (``coalition.ledger.idempotency``): the entry or kept
        refusal under the key (replay, conflict), the merchant's suspension; the write's own come after."""
        return Outcomes(earlier=lambda: self._earlier(conn, merchant_id, key, fingerprint), executor=conn,
                        merchant_id=merchant_id)

    async def _earlier(self, conn: AsyncConnection, merchant_id: int, key: str, fingerprint: str) -> GiftResult | None:
        entry = await find_earlier(conn, ENTRY_KEYS, (merchant_id,), key, fingerprint)
        if entry is None:
            await refusals.raise_if_recorded(conn, merchant_id, key, fingerprint)
            return None
        return await self._replay(conn, entry)

    async def _replay(self, conn: AsyncConnection, entry: GiftEntry) -> GiftResult:
        """The result of an entry written earlier (a retry's answer): the card as it is now, the hold if any."""
        card = card_from_row((await conn.execute(select(GiftCard).where(GiftCard.id == entry.card_id))).one())
        hold = None
        hold_id = entry.id if entry.kind == GiftEntryKind.HOLD else entry.hold_id
        if hold_id is not None:
            hold = hold_from_row((await conn.execute(select(GiftHold).where(GiftHold.id == hold_id))).one())
        return GiftResult(card=card, entry=entry, hold=hold, replayed=True)

    async def _insert_entry(self, conn: AsyncConnection, **values: Any) -> tuple[GiftEntry, bool]:
        """The entry, inserted unless its key is taken: ``(entry, True)``, or a retry's ``(earlier entry,
        False)``, or IDEMPOTENCY_KEY_CONFLICT (``idempotency.insert_once``). Keyless entries always go in."""
        values.setdefault("currency", self.settings.currency)
        return await insert_once(conn, ENTRY_KEYS, values)

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
        card = card_from_row(row)
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
            current = card_from_row((await conn.execute(select(GiftCard).where(GiftCard.id == card.id))).one())
            if current.expires_at is not None and current.expires_at <= now:
                raise GiftCardExpired(f"gift card …{card.last4} expired", field="code")
            raise InsufficientFunds(f"gift card …{card.last4} holds {current.balance_minor} minor units, "
                                    f"{amount} asked", field="amountMinor")
        return card_from_row(row)

    async def _add_to_card(self, conn: AsyncConnection, card_id: int, *, balance: int = 0, held: int = 0) -> GiftCard:
        row = (await conn.execute(update(GiftCard).where(GiftCard.id == card_id).values(
            balance_minor=GiftCard.balance_minor + balance, held_minor=GiftCard.held_minor + held,
        ).returning(GiftCard))).one()
        return card_from_row(row)


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
        if self.fast_path:
            hooked = (hold_expires_in_s is None and self.db.hooks is not None
                      and await self.db.hooks.wants(merchant_id, GIFT_REDEEMED))
            done = await self.fast.spend(merchant_id=merchant_id, code_hash=digest, amount=amount, reference=reference,
                                         idempotency_key=key, request_hash=fingerprint, currency=self.settings.currency,
                                         now=now, hold_expires_in_s=hold_expires_in_s, hooked=hooked)
            if done is not None:
                return self._spent(done, merchant_id, amount, reference, key, fingerprint, now, hold_expires_in_s)
        try:
            return await self._keeping_refusals(merchant_id, key, fingerprint, now, lambda: self._spend_in_tx(
                merchant_id, digest, amount, key, fingerprint, reference, hold_expires_in_s, now))
        except GiftCardNotFound:
            await self.guard.failed(caller_key)
            raise

    def _spent(self, done: fastpath.Done, merchant_id: int, amount: int, reference: str | None, key: str,
               fingerprint: str, now: dt.datetime, hold_expires_in_s: int | None) -> GiftResult:
        """The result of a spend the one-statement path wrote, as the multi-statement path returns it."""
        entry_id, card = done
        hold_kind = hold_expires_in_s is not None
        entry = GiftEntry.from_values(
            id=entry_id, kind=GiftEntryKind.HOLD if hold_kind else GiftEntryKind.REDEEM, card_id=card.id,
            issuer_merchant_id=card.issuer_merchant_id, merchant_id=merchant_id, amount_minor=-amount,
            spent_minor=0 if hold_kind else amount, currency=self.settings.currency, reference=reference,
            reverses_id=None, hold_id=None, idempotency_key=key, request_hash=fingerprint, created_at=now)
        hold = None
        if hold_expires_in_s is not None:
            hold = GiftHold.from_values(
                id=entry_id, card_id=card.id, merchant_id=merchant_id, amount_minor=amount, captured_minor=None,
                status=GiftHoldStatus.AUTHORIZED, expires_at=now + dt.timedelta(seconds=hold_expires_in_s),
                closed_at=None, created_at=now)
        return GiftResult(card=card, entry=entry, hold=hold)

    async def _spend_in_tx(self, merchant_id: int, digest: str, amount: int, key: str, fingerprint: str,
                           reference: str | None, hold_expires_in_s: int | None, now: dt.datetime) -> GiftResult:
        hold_kind = hold_expires_in_s is not None
        async with self.db.transaction() as conn:
            outcomes = self.outcomes(conn, merchant_id, key, fingerprint)
            if (earlier := await outcomes.earlier()) is not None:
                return earlier
            await outcomes.check_merchant()
            card = await self._card_for_spend(conn, digest, now)
            entry, inserted = await self._insert_entry(
                conn, kind=GiftEntryKind.HOLD if hold_kind else GiftEntryKind.REDEEM, card_id=card.id,
                issuer_merchant_id=card.issuer_merchant_id, merchant_id=merchant_id, amount_minor=-amount,
                spent_minor=0 if hold_kind else amount, reference=reference, idempotency_key=key,
                request_hash=fingerprint, created_at=now)
            if not inserted:  # a concurrent retry with the key won
                return await self._replay(conn, entry)
            card = await self._take(conn, card, amount, now, to_held=hold_kind)
            hold = None
            if hold_expires_in_s is not None:
                hold = hold_from_row((await conn.execute(insert(GiftHold).values(
                    id=entry.id, card_id=card.id, merchant_id=merchant_id, amount_minor=amount,
                    status=GiftHoldStatus.AUTHORIZED, expires_at=now + dt.timedelta(seconds=hold_expires_in_s),
                    created_at=now).returning(GiftHold))).one())
            await self._post(conn, entry.id, fastpath.legs(fastpath.HOLD_LEGS if hold_kind else fastpath.SPEND_LEGS,
                                                           card_id=card.id, merchant_id=merchant_id, amount=amount))
            if not hold_kind:
                note_change(lambda: redeemed_change(entry, card))
        return GiftResult(card=card, entry=entry, hold=hold)

