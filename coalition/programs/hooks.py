"""What the programs do after a ledger write: the one hook each of earn and reverse calls.

``after_earn``: an earn at a merchant with an active stamp card stamps it; an earn at a shop of
a running quest counts as a visit. ``after_reversal``: a reversed earn loses its stamps; a
reversed reward claim (the merchant refunded it) cancels its voucher. Both run after the
ledger's transaction committed, each program step in a transaction of its own, keyed by the
earn's entry id, so running one twice (a retried earn replays and runs it again) changes
nothing more, and a retry repairs a step a crash lost. A merchant with no program pays a
dictionary lookup (``stamps.ProgramDirectory``), no round trip.
"""

from __future__ import annotations

import logging

from sqlalchemy import update

from coalition.errors import DomainError
from coalition.ledger.core import LedgerResult
from coalition.ledger.models import EntryKind
from coalition.ledger.service import Ledger
from coalition.programs import quests, stamps, vouchers
from coalition.programs.reward_models import Voucher, VoucherStatus

logger = logging.getLogger("coalition.programs")


async def after_earn(ledger: Ledger, result: LedgerResult) -> None:
    entry = result.entry
    now = entry.created_at  # the purchase's time, also when a retry replays it later
    if entry.kind != EntryKind.EARN or entry.merchant_id is None:
        return
    ttl = ledger.settings.programs_cache_s
    cards, running = await stamps.directory(ledger.db, ttl).rules_for(entry.merchant_id)
    for card in cards:
        if (entry.amount_minor or 0) >= card.min_purchase_minor:
            await stamps.stamp_earn(ledger, card, member_id=entry.member_id, entry_id=entry.id, now=now)
    for quest in running:
        if quest.starts_at <= now < quest.ends_at:
            try:
                await quests.record_visit(ledger, quest_id=quest.id, member_id=entry.member_id,
                                          merchant_id=entry.merchant_id, now=now)
            except DomainError as exc:  # a bonus the ledger refuses (balance at its limit): the next visit retries
                logger.warning("quest %s bonus for member %s not paid: %s", quest.id, entry.member_id, exc.code)


async def after_reversal(ledger: Ledger, result: LedgerResult) -> None:
    now = ledger.clock()
    reversed_id = result.entry.reverses_id
    if result.entry.kind != EntryKind.REVERSAL or reversed_id is None:
        return
    await stamps.unstamp_reversed(ledger, earn_entry_id=reversed_id, now=now)
    async with ledger.db.transaction() as conn:
        # The merchant refunded a reward claim itself: the points are back, so the voucher is void.
        voided = (await conn.execute(
            update(Voucher).where(Voucher.redeem_entry_id == reversed_id, Voucher.status == VoucherStatus.ISSUED)
            .values(status=VoucherStatus.CANCELLED, closed_at=now, reversal_entry_id=result.entry.id)
            .returning(*Voucher.__table__.c)
        )).first()
        if voided is not None:
            await vouchers.restock_in(conn, voided)
