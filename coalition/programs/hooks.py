"""What the programs do after a ledger write: the one hook each of earn and reverse calls.

``after_earn``: an earn at a merchant with an active stamp card stamps it; an earn at a shop of
a running quest counts as a visit. ``after_reversal``: a reversed earn loses its stamps; a
reversed reward claim (the merchant refunded it) cancels its voucher. Both run after the
ledger's transaction committed, each program step in a transaction of its own, keyed by the
earn's entry id, so running one twice changes nothing more. A merchant with no program pays a
dictionary lookup (``stamps.ProgramDirectory``), no round trip.

A crash between the ledger's commit and a step loses the step only for a while: a retried earn
replays and runs it again, and without a retry the worker's ``programs`` job
(:mod:`coalition.programs.catchup`) finds the purchase that lacks its stamp, visit or undoing and
runs the same step (:func:`stamp`, :func:`visit`, :func:`undo_reversed`) for it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import update

from coalition.errors import DomainError
from coalition.ledger.core import LedgerResult
from coalition.ledger.models import EntryKind
from coalition.ledger.service import Ledger
from coalition.programs import quests, stamps, vouchers
from coalition.programs.reward_models import Voucher, VoucherStatus
from coalition.programs.stamps import CardRule, QuestRule

logger = logging.getLogger("coalition.programs")


@dataclass(frozen=True)
class Purchase:
    """An earn as the programs see it; ``at`` is the purchase's time (its entry's, also when replayed later)."""

    entry_id: int
    member_id: int
    merchant_id: int
    amount_minor: int
    at: dt.datetime


async def after_earn(ledger: Ledger, result: LedgerResult) -> None:
    entry = result.entry
    if entry.kind != EntryKind.EARN or entry.merchant_id is None:
        return
    purchase = Purchase(entry.id, entry.member_id, entry.merchant_id, entry.amount_minor or 0, entry.created_at)
    cards, running = await stamps.directory(ledger.db, ledger.settings.programs_cache_s).rules_for(entry.merchant_id)
    await stamp(ledger, purchase, cards)
    await visit(ledger, purchase, running)


async def stamp(ledger: Ledger, purchase: Purchase, cards: Iterable[CardRule]) -> None:
    """Stamp each of ``cards`` the purchase reaches the minimum of, once per card and earn."""
    for card in cards:
        if purchase.amount_minor >= card.min_purchase_minor:
            await stamps.stamp_earn(ledger, card, member_id=purchase.member_id, entry_id=purchase.entry_id,
                                    now=purchase.at)


async def visit(ledger: Ledger, purchase: Purchase, running: Iterable[QuestRule]) -> None:
    """Count the purchase as a visit to each quest running at its time (the quest's completion row pays once)."""
    for quest in running:
        if quest.starts_at <= purchase.at < quest.ends_at:
            try:
                await quests.record_visit(ledger, quest_id=quest.id, member_id=purchase.member_id,
                                          merchant_id=purchase.merchant_id, now=purchase.at)
            except DomainError as exc:  # a bonus the ledger refuses (balance at its limit): the next visit retries
                logger.warning("quest %s bonus for member %s not paid: %s", quest.id, purchase.member_id, exc.code)


async def after_reversal(ledger: Ledger, result: LedgerResult) -> None:
    reversed_id = result.entry.reverses_id
    if result.entry.kind != EntryKind.REVERSAL or reversed_id is None:
        return
    await undo_reversed(ledger, reversal_id=result.entry.id, reversed_id=reversed_id)


async def undo_reversed(ledger: Ledger, *, reversal_id: int, reversed_id: int) -> None:
    """Unstamp the reversed earn and cancel the voucher of a reversed claim; a second run finds nothing left."""
    now = ledger.clock()
    await stamps.unstamp_reversed(ledger, earn_entry_id=reversed_id, now=now)
    async with ledger.db.transaction() as conn:
        # The merchant refunded a reward claim itself: the points are back, so the voucher is void.
        voided = (await conn.execute(
            update(Voucher).where(Voucher.redeem_entry_id == reversed_id, Voucher.status == VoucherStatus.ISSUED)
            .values(status=VoucherStatus.CANCELLED, closed_at=now, reversal_entry_id=reversal_id)
            .returning(*Voucher.__table__.c)
        )).first()
        if voided is not None:
            await vouchers.restock_in(conn, voided)
