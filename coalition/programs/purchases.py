"""A purchase and its refund as every live caller makes them: the ledger write, then the programs.

Every live earn path (``earnPoints`` over the API, which the Python client and scripts call;
the demo) calls :func:`earn`, and every merchant's refund :func:`reverse`, so a stamp card or
a quest sees each purchase whoever recorded it. (The CLI has no earn command.)

What is *not* a live purchase does not call them, on purpose: history imported with its
effective dates (``coalition/portability``) writes old purchases, and stamping those would
fill cards and complete quests with visits made before the card or quest existed (or count
one visit twice when the shop's own system already gave the stamp); a gift card's points
(``coalition/giftcards``) are that program's own.

After the commit, not in the transaction. The ledger's write commits first (on PostgreSQL the
one-statement earn: putting the stamp in its transaction would send every earn at a merchant
with a card down the multi-statement path), then :func:`coalition.programs.hooks.after_earn`
runs, each step keyed by the earn's entry id. A crash between the two does not lose the stamp:
a retried earn replays and applies it then, and without a retry the worker's ``programs`` job
(:mod:`coalition.programs.catchup`) finds the purchase without its stamp or quest visit (or the
refund without its undoing) and applies it, once the entry is ``COALITION_PROGRAMS_CATCHUP_GRACE_S``
old and while it is younger than ``COALITION_PROGRAMS_CATCHUP_S``. The job tells the history
and gift card points above from live purchases and leaves them unstamped, as this module does.
"""

from __future__ import annotations

from coalition.ledger.core import LedgerResult
from coalition.ledger.service import Ledger
from coalition.programs import hooks


async def earn(ledger: Ledger, *, merchant_id: int, loyalty_id: str, purchase_amount_minor: int,
               idempotency_key: str, reference: str | None = None) -> LedgerResult:
    """Points for a purchase made now (``Ledger.earn``), then its stamps and quest visits, once."""
    result = await ledger.earn(merchant_id=merchant_id, loyalty_id=loyalty_id,
                               purchase_amount_minor=purchase_amount_minor, reference=reference,
                               idempotency_key=idempotency_key)
    await hooks.after_earn(ledger, result)
    return result


async def reverse(ledger: Ledger, *, merchant_id: int, transaction_id: int, idempotency_key: str,
                  reason: str | None = None) -> LedgerResult:
    """A merchant's refund (``Ledger.reverse``), then the stamps and vouchers of what it reversed, once."""
    result = await ledger.reverse(merchant_id=merchant_id, transaction_id=transaction_id, reason=reason,
                                  idempotency_key=idempotency_key)
    await hooks.after_reversal(ledger, result)
    return result
