"""PostgreSQL only: gift card spends and authorizations, many at a time, as one statement and transaction.

The multi-statement code in ``base.py`` (``GiftCardsBase._spend_in_tx``) is the definition of
a spend; SQLite runs only that. On PostgreSQL a spend (``redeemGiftCard``) or an
authorization (``authorizeGiftCard``) first tries one data-modifying CTE that does the whole
common case in one round trip, as the points' fast path does (``coalition/ledger/fastpath.py``,
whose batching and statement helpers it shares): the entry under its idempotency key, the
card's conditional UPDATE, the hold (authorization) and the postings (asset MONEY), which
sum to zero. Concurrent calls of one kind go together in one statement
(:mod:`coalition.ledger.batching`), at most one per card. Anything unusual leaves that
operation out, or fails the statement (undoing the batch); each operation left out then
runs on the multi-statement path, which gives the result or the error it always gave.

Unusual: the key already used (a retry, a conflict, a kept refusal), the merchant not
active, no card with the code's hash, a card expired or holding less than asked in the
statement's snapshot, or (failing the batch) a card whose newest row version holds less.

Concurrency. The card's balance is the only state a spend reads, and the card UPDATE's
``balance_minor >= amount`` (and unexpired) condition is re-checked by PostgreSQL on the
newest row version, under the row lock, so no interleaving overdraws a card; the table's
CHECK stays the last line. An entry inserted for a card the UPDATE then skipped (another
spend took the money after the snapshot) makes the final SELECT divide by zero, which fails
the statement and so undoes every entry of the batch: it runs once more on a fresh snapshot,
and what it still cannot do goes to the multi-statement path. Cards are updated in id
order, so two batches (two processes) lock their common cards in one order.

A spend whose merchant has an endpoint for ``giftcard.redeemed`` (the caller asks the
per-process endpoint cache and marks the operation ``hooked``) writes its webhook outbox rows
in the statement, as ``base.redeemed_change`` does on the multi-statement path; an
authorization writes none (the capture is the spend). The guessing guard's look-up budget is
checked and counted by the caller, before and after, exactly as on the multi-statement path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import asyncpg

from coalition.db import Database
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
from coalition.ledger import rules
from coalition.ledger.batch_sql import (
    NumberedSql,
    column_list,
    fetch_batch,
    number_parameters,
    outbox_cte,
    sql_literal,
)
from coalition.ledger.batching import Batcher
from coalition.ledger.models import Refusal
from coalition.partners.models import Merchant


@dataclass(frozen=True)
class GiftLeg:
    """One posting of a gift card movement: the account, whether its holder is the card (else the
    merchant), and the sign of the amount."""

    account: GiftAccount
    of_card: bool
    sign: int


# The postings of a spend and of an authorization, for both paths; each sums to zero.
SPEND_LEGS = (GiftLeg(GiftAccount.CARD, True, -1), GiftLeg(GiftAccount.SPENT, False, 1))
HOLD_LEGS = (GiftLeg(GiftAccount.CARD, True, -1), GiftLeg(GiftAccount.CARD_HELD, True, 1))


def legs(movement: Sequence[GiftLeg], *, card_id: int, merchant_id: int,
         amount: int) -> list[tuple[GiftAccount, int, int]]:
    """The legs as ``GiftCardsBase._post`` takes them."""
    return [(leg.account, card_id if leg.of_card else merchant_id, leg.sign * amount) for leg in movement]


_CARDS, _ENTRIES, _POSTINGS, _HOLDS = (GiftCard.__tablename__, GiftEntry.__tablename__, GiftPosting.__tablename__,
                                       GiftHold.__tablename__)
_MERCHANTS, _REFUSALS = Merchant.__tablename__, Refusal.__tablename__
_CARD_COLUMNS = tuple(GiftCard.__table__.columns)
_RETURNING = ", ".join(f"c.{c.name}" for c in _CARD_COLUMNS)
_UPDATED = ", ".join(f"u.{c.name}" for c in _CARD_COLUMNS)
_MERCHANT_MAY_WRITE = rules.render(rules.merchant_may_write(Merchant.__table__.alias("mc").c.status))
_ACCOUNT = {account: sql_literal(GiftPosting.account, account) for account in GiftAccount}
_AUTHORIZED = sql_literal(GiftHold.status, GiftHoldStatus.AUTHORIZED)
GIFT_REDEEMED = "giftcard.redeemed"


def _legs_sql(movement: Sequence[GiftLeg]) -> tuple[str, str]:
    values = ", ".join(f"({n}, {_ACCOUNT[leg.account]}, {leg.sign})" for n, leg in enumerate(movement, start=1))
    whens = " ".join(f"WHEN {_ACCOUNT[leg.account]} THEN {'u.id' if leg.of_card else 'es.merchant_id'}"
                     for leg in movement)
    return values, f"CASE leg.account {whens} END"


def _spend_sql(kind: GiftEntryKind) -> str:
    """The statement of a spend (REDEEM) or an authorization (HOLD) of a batch of cards."""
    hold = kind == GiftEntryKind.HOLD
    # The outbox rows of the spends marked ``hooked`` (the same row base.redeemed_change gives).
    outbox = "" if hold else ",\n" + outbox_cte(
        GIFT_REDEEMED, member="NULL", joined_on="es.card_id = u.id",
        payload=f"'gift_entry_id', es.id, 'kind', {sql_literal(GiftEntry.kind, kind)}, 'card_id', u.id, "
                "'last4', u.last4, 'amount_minor', es.amount, 'currency', es.currency, "
                "'reference', es.reference, 'hold_id', NULL")
    leg_values, leg_holder = _legs_sql(HOLD_LEGS if hold else SPEND_LEGS)
    held = ", held_minor = c.held_minor + es.amount" if hold else ""
    hold_cte = f"""hold AS (
    INSERT INTO {_HOLDS} ({column_list(GiftHold, "id", "card_id", "merchant_id", "amount_minor", "status", "expires_at",
                                       "created_at")})
    SELECT es.id, u.id, es.merchant_id, es.amount, {_AUTHORIZED}, es.now + es.expires_in_s * interval '1 second',
           es.now
    FROM u JOIN es ON es.card_id = u.id
    ORDER BY es.n
),""" if hold else ""
    return f"""
WITH req AS (
    SELECT * FROM unnest(CAST(:merchant_id AS bigint[]), CAST(:code_hash AS varchar[]), CAST(:amount AS bigint[]),
                         CAST(:reference AS varchar[]), CAST(:idempotency_key AS varchar[]),
                         CAST(:request_hash AS varchar[]), CAST(:currency AS varchar[]),
                         CAST(:now AS timestamptz[]), CAST(:expires_in_s AS bigint[]), CAST(:hooked AS boolean[]))
        WITH ORDINALITY AS r (merchant_id, code_hash, amount, reference, idempotency_key, request_hash, currency,
                              now, expires_in_s, hooked, n)
),
snap AS (
    SELECT r.*, c.id AS card_id, c.issuer_merchant_id
    FROM req r
    JOIN {_MERCHANTS} mc ON mc.id = r.merchant_id AND {_MERCHANT_MAY_WRITE}
    JOIN {_CARDS} c ON c.code_hash = r.code_hash AND c.balance_minor >= r.amount
                   AND (c.expires_at IS NULL OR c.expires_at > r.now)
    WHERE NOT EXISTS (SELECT 1 FROM {_REFUSALS} f
                      WHERE f.merchant_id = r.merchant_id AND f.idempotency_key = r.idempotency_key)
),
e AS (
    INSERT INTO {_ENTRIES} ({column_list(GiftEntry, "kind", "card_id", "issuer_merchant_id", "merchant_id",
                                         "amount_minor", "spent_minor", "currency", "reference", "idempotency_key",
                                         "request_hash", "created_at")})
    SELECT {sql_literal(GiftEntry.kind, kind)}, s.card_id, s.issuer_merchant_id, s.merchant_id, -s.amount,
           {"0" if hold else "s.amount"}, s.currency, s.reference, s.idempotency_key, s.request_hash, s.now
    FROM snap s
    ORDER BY s.n
    ON CONFLICT DO NOTHING
    RETURNING id, card_id, merchant_id, idempotency_key
),
es AS (
    SELECT e.id, e.card_id, s.amount, s.n, s.merchant_id, s.now, s.expires_in_s, s.currency, s.reference, s.hooked
    FROM e JOIN snap s ON s.merchant_id = e.merchant_id AND s.idempotency_key = e.idempotency_key
                      AND s.card_id = e.card_id
    ORDER BY e.card_id
),
u AS (
    UPDATE {_CARDS} c
    SET balance_minor = c.balance_minor - es.amount{held}
    FROM es
    WHERE c.id = es.card_id AND c.balance_minor >= es.amount AND (c.expires_at IS NULL OR c.expires_at > es.now)
    RETURNING {_RETURNING}
),
{hold_cte}
legs AS (
    INSERT INTO {_POSTINGS} ({column_list(GiftPosting, "entry_id", "asset", "currency", "account", "account_id",
                                          "amount_minor")})
    SELECT es.id, '{MONEY}', es.currency, leg.account, {leg_holder}, leg.sign * es.amount
    FROM u JOIN es ON es.card_id = u.id,
         (VALUES {leg_values}) AS leg (n, account, sign)
    ORDER BY es.n, leg.n
){outbox}
SELECT es.n, e.id AS entry_id, {_UPDATED},
       1 / CAST((SELECT count(*) FROM u) = (SELECT count(*) FROM e)
                AND (SELECT count(*) FROM es) = (SELECT count(*) FROM e) AS int) AS applied
FROM e LEFT JOIN es ON es.id = e.id LEFT JOIN u ON u.id = es.card_id
"""


_REDEEM = number_parameters(_spend_sql(GiftEntryKind.REDEEM))
_AUTHORIZE = number_parameters(_spend_sql(GiftEntryKind.HOLD))

Done = tuple[int, GiftCard]  # (entry id, the card after)


def _card(row: asyncpg.Record) -> GiftCard:
    return GiftCard.from_values(**{c.key: row[i] for i, c in enumerate(_CARD_COLUMNS, start=2)})


async def _run(db: Database, statement: NumberedSql, operations: Sequence[Mapping[str, Any]]) -> list[Done | None]:
    """One batch as one statement, its own transaction: per operation ``Done``, or None (the
    multi-statement path answers it). A statement that failed because a card changed after its
    snapshot runs once more; a lost connection is handed over too (the other path replays an
    entry that did commit)."""
    done: list[Done | None] = [None] * len(operations)
    for row in await fetch_batch(db, statement, operations):
        done[row[0] - 1] = (int(row[1]), _card(row))
    return done


class GiftFastPath:
    """The one-statement gift card spend and authorization of one database, batching concurrent calls
    (at most ``max_batch`` per statement, one per card, ``max_in_flight`` statements of each kind at once)."""

    def __init__(self, db: Database, *, max_in_flight: int, max_batch: int = 32) -> None:
        def batcher(statement: NumberedSql) -> Batcher[dict[str, Any], Done | None]:
            return Batcher(lambda operations: _run(db, statement, operations), itemgetter("code_hash"),
                           max_in_flight=max_in_flight, max_size=max_batch)

        self._redeem = batcher(_REDEEM)
        self._authorize = batcher(_AUTHORIZE)

    async def spend(self, *, merchant_id: int, code_hash: str, amount: int, reference: str | None,
                    idempotency_key: str, request_hash: str, currency: str, now: dt.datetime,
                    hold_expires_in_s: int | None, hooked: bool = False) -> Done | None:
        """A spend (``hold_expires_in_s`` None) or an authorization: ``(entry id, card after)``, or None to
        take the multi-statement path."""
        batcher = self._redeem if hold_expires_in_s is None else self._authorize
        return await batcher.submit({
            "merchant_id": merchant_id, "code_hash": code_hash, "amount": amount, "reference": reference,
            "idempotency_key": idempotency_key, "request_hash": request_hash, "currency": currency, "now": now,
            "expires_in_s": hold_expires_in_s, "hooked": hooked,
        })
