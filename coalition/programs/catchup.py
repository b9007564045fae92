"""The programs' steps a crash lost, applied late: the worker's ``programs`` job.

Stamps, quest visits and the undoing of a refund run after the ledger's commit
(:mod:`coalition.programs.hooks`), so a crash between the two loses them until the client
retries the write. :func:`catch_up` finds, among the entries of the last ``look_back_s``
(``COALITION_PROGRAMS_CATCHUP_S``) older than ``grace_s`` (``COALITION_PROGRAMS_CATCHUP_GRACE_S``,
time for the live hook to have run), what lacks its step, and runs the hook's own step for it:

- a live EARN, not reversed, at a merchant with an active stamp card it reaches the minimum of,
  made at or after the card was created, without its stamp row: :func:`hooks.stamp`;
- such an earn inside a running quest's window at one of its shops, the member without the
  quest's completion and without a visit to that shop at or after the earn: :func:`hooks.visit`;
- a REVERSAL whose reversed earn still has a stamp not removed, or whose reversed reward claim
  still has its voucher ISSUED: :func:`hooks.undo_reversed`.

Not a live purchase, never stamped (as the live path never calls the hook for them): history a
member import wrote (request hash ``IMPORTED_REQUEST_HASH``, and any entry with an effective date)
and a gift card sale's points (key ``GIFT_CARD_EARN_PREFIX``...). A reversed earn is not stamped
late either: its refund took the purchase back.

Racing is harmless. Each step is keyed by the earn's entry id: the stamp row is unique per card
and earn (``INSERT ... ON CONFLICT DO NOTHING``: of two writers one inserts, the other waits on
the index entry and inserts nothing), so a card's progress and voucher move once; a quest's
completion row (its primary key) pays the bonus once, under a key per quest and member; a
visit's time only moves forward; unstamping and cancelling are conditional UPDATEs of rows still
in the state to change. So the job may run in several workers at once, and beside the live
hook. One order a race can leave: the job stamps an earn whose refund commits meanwhile and
finds nothing to unstamp yet; the next run sees that reversal with a stamp left and removes it.

Cost: ``entries`` has no index on its time (an earn would pay for one), so the window's first id
is found by bisecting the primary key (ids grow with time: some 25 index probes for 10^7
entries); the window's entries are then read from that id on through the primary key (or, where
the planner prefers, per card merchant through ``(merchant_id, id)``), and the reversals through
the partial index of reversals (on PostgreSQL the planner reads that whole index, every reversal
ever made, once a query: reversals are about one entry in a hundred; ``bench/programs_catchup.py``
shows the plans). Nothing scans the ledger's entries. A worker's first run
reads the whole look-back; its later runs resume a grace period before where the last one ended
(``resume_from``), so each reads about one interval's entries (an entry committed more than a
grace period after it was written, and older than that overlap, is left to the next worker start).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import QueryableAttribute, aliased

from coalition.ledger.idempotency import GIFT_CARD_EARN_PREFIX, IMPORTED_REQUEST_HASH
from coalition.ledger.models import Entry, EntryKind
from coalition.ledger.service import Ledger
from coalition.programs import hooks
from coalition.programs.hooks import Purchase
from coalition.programs.reward_models import (
    Quest,
    QuestCompletion,
    QuestMerchant,
    QuestVisit,
    Stamp,
    StampCard,
    Voucher,
    VoucherStatus,
)
from coalition.programs.stamps import CardRule, QuestRule

Rows = Select[*tuple[Any, ...]]  # a query of rows of any columns
PAGE = 500  # rows read a query; a run goes through the whole window, page by page


@dataclass
class CatchUp:
    """The steps one run ran for what it found missing: stamps (earn x card), quest visits (earn x quest),
    reversals undone. A step another writer applied meanwhile ran and changed nothing: still counted."""

    stamps: int = 0
    visits: int = 0
    reversals: int = 0
    through: dt.datetime | None = field(default=None, compare=False)  # the window's end: a next run resumes here

    @property
    def total(self) -> int:
        return self.stamps + self.visits + self.reversals


async def first_entry_id_since(conn: AsyncConnection, since: dt.datetime) -> int:
    """The smallest id from which on entries were written at or after ``since`` (past the last id if none).

    Bisects the primary key (ids grow with ``created_at``), one index probe a step."""
    lo, hi = (await conn.execute(select(func.min(Entry.id), func.max(Entry.id)))).one()
    if lo is None:
        return 0
    hi += 1
    while lo < hi:
        mid = (lo + hi) // 2
        row = (await conn.execute(select(Entry.id, Entry.created_at).where(Entry.id >= mid)
                                  .order_by(Entry.id).limit(1))).first()
        if row is None or row.created_at >= since:
            hi = mid
        else:
            lo = row.id + 1
    return int(lo)


def _live_earns(first_id: int, since: dt.datetime, until: dt.datetime) -> ColumnElement[bool]:
    """Earns a live purchase made in the window and nobody reversed: those the live hook applies programs to."""
    refund = aliased(Entry)
    return and_(
        Entry.id >= first_id, Entry.kind == EntryKind.EARN, Entry.created_at >= since, Entry.created_at < until,
        Entry.effective_at.is_(None), Entry.request_hash != IMPORTED_REQUEST_HASH,
        ~func.coalesce(Entry.idempotency_key, "").startswith(GIFT_CARD_EARN_PREFIX, autoescape=True),
        ~exists().where(refund.reverses_id == Entry.id),
    )


def _unstamped(live: ColumnElement[bool]) -> Rows:
    return (
        select(Entry.id, Entry.member_id, Entry.merchant_id, Entry.amount_minor, Entry.created_at,
               StampCard.id.label("rule_id"), StampCard.stamps_required, StampCard.min_purchase_minor,
               StampCard.reward_id)
        .join(StampCard, and_(StampCard.merchant_id == Entry.merchant_id, StampCard.active.is_(True),
                              StampCard.created_at <= Entry.created_at,
                              func.coalesce(Entry.amount_minor, 0) >= StampCard.min_purchase_minor))
        .where(live, ~exists().where(Stamp.card_id == StampCard.id, Stamp.earn_entry_id == Entry.id))
        .order_by(Entry.id, StampCard.id)
    )


def _unvisited(live: ColumnElement[bool]) -> Rows:
    return (
        select(Entry.id, Entry.member_id, Entry.merchant_id, Entry.amount_minor, Entry.created_at,
               Quest.id.label("rule_id"), Quest.starts_at, Quest.ends_at)
        .join(QuestMerchant, QuestMerchant.merchant_id == Entry.merchant_id)
        .join(Quest, and_(Quest.id == QuestMerchant.quest_id, Quest.starts_at <= Entry.created_at,
                          Quest.ends_at > Entry.created_at))
        .where(live,
               ~exists().where(QuestCompletion.quest_id == Quest.id, QuestCompletion.member_id == Entry.member_id),
               ~exists().where(QuestVisit.quest_id == Quest.id, QuestVisit.member_id == Entry.member_id,
                               QuestVisit.merchant_id == Entry.merchant_id,
                               QuestVisit.last_visit_at >= Entry.created_at))
        .order_by(Entry.id, Quest.id)
    )


def _undone(first_id: int, since: dt.datetime, until: dt.datetime) -> Rows:
    reversed_id = Entry.reverses_id
    return (
        select(Entry.id, reversed_id)
        .where(Entry.reverses_id.is_not(None), Entry.id >= first_id, Entry.kind == EntryKind.REVERSAL,
               Entry.created_at >= since, Entry.created_at < until,
               or_(exists().where(Stamp.earn_entry_id == reversed_id, Stamp.removed.is_(False)),
                   exists().where(Voucher.redeem_entry_id == reversed_id, Voucher.status == VoucherStatus.ISSUED)))
        .order_by(Entry.id)
    )


def _purchase(row: Any) -> Purchase:
    return Purchase(row.id, row.member_id, row.merchant_id, row.amount_minor or 0, row.created_at)


async def _pages(ledger: Ledger, query: Rows, rule: QueryableAttribute[int] | None) -> AsyncIterator[list[Any]]:
    """The rows of ``query`` (ordered by entry id, then ``rule``) a page at a time, by keyset: a page's
    steps run before the next page is read, and a row whose step failed is not read again this run."""
    page_query = query
    while True:
        async with ledger.db.read() as conn:
            page = list(await conn.execute(page_query.limit(PAGE)))
        if page:
            yield page
        if len(page) < PAGE:
            return
        last = page[-1]
        page_query = query.where(Entry.id > last.id if rule is None else
                                 or_(Entry.id > last.id, and_(Entry.id == last.id, rule > last.rule_id)))


async def catch_up(ledger: Ledger, *, now: dt.datetime, look_back_s: float, grace_s: float,
                   resume_from: dt.datetime | None = None) -> CatchUp:
    """Apply the programs' steps the entries written between ``now - look_back_s`` and ``now - grace_s`` lack.

    ``resume_from``: the ``through`` of this process's last run that finished; this run then starts a
    grace period before it (an entry committed late is still seen), not ``look_back_s`` back."""
    grace = dt.timedelta(seconds=grace_s)
    since, until = now - dt.timedelta(seconds=look_back_s), now - grace
    if resume_from is not None:
        since = max(since, resume_from - grace)
    done = CatchUp(through=until)
    if since >= until:
        return done
    async with ledger.db.read() as conn:
        first_id = await first_entry_id_since(conn, since)
    live = _live_earns(first_id, since, until)
    async for page in _pages(ledger, _unstamped(live), StampCard.id):
        for row in page:
            card = CardRule(row.rule_id, row.stamps_required, row.min_purchase_minor, row.reward_id)
            await hooks.stamp(ledger, _purchase(row), [card])
            done.stamps += 1
    async for page in _pages(ledger, _unvisited(live), Quest.id):
        for row in page:
            await hooks.visit(ledger, _purchase(row), [QuestRule(row.rule_id, row.starts_at, row.ends_at)])
            done.visits += 1
    async for page in _pages(ledger, _undone(first_id, since, until), None):
        for row in page:
            await hooks.undo_reversed(ledger, reversal_id=row.id, reversed_id=row.reverses_id)
            done.reversals += 1
    return done
