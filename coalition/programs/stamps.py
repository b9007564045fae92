"""Stamp cards: "buy 9 coffees, the 10th is free".

A merchant defines a card (:func:`create_stamp_card`): how many stamps fill it, the smallest
purchase that earns a stamp, and the reward a full card gives. An earn at that merchant of at
least the minimum stamps every active card of the merchant once (:func:`stamp_earn`, called
after the earn, keyed by the earn's entry id: a stamp happens once however often it is
applied); a full card issues a voucher of the reward (no points taken, no stock taken) and the
next card starts. A stamp a crash after the earn's commit lost is applied later, by the retried
earn or, without a retry, by the worker's ``programs`` job (:mod:`coalition.programs.catchup`),
which stamps each live earn made since the card was created and not reversed.

Counting. ``stamp_progress`` keeps ``total_stamps`` and ``completed_cards``; the current card
holds ``total_stamps - completed_cards * stamps_required``. Reversing a stamped purchase
(:func:`unstamp_reversed`) removes its stamp: ``total_stamps - 1``. When that empties a
completed card, the card's voucher is cancelled if unused (and the card is open again);
if it was used, the member owes the stamp: the current card shows 0 until a purchase
repays it (as a reversed earn leaves points owed).

The earn path pays for this only where a merchant runs a card: :class:`ProgramDirectory` keeps,
per process, which merchants have active cards (and quests), refreshed every
``COALITION_PROGRAMS_CACHE_S`` seconds and at once in the process that creates a card; an earn
at any other merchant costs a dictionary lookup, no round trip. A card created in another
process stamps earns from its next refresh on (at most that many seconds later); the worker's
``programs`` job stamps the earns made in between.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.caching import Refreshed
from coalition.db import Database
from coalition.errors import check_idempotency_key
from coalition.ledger import core
from coalition.ledger.core import MAX_POINTS
from coalition.ledger.idempotency import KeyColumns, insert_once
from coalition.ledger.service import Ledger
from coalition.programs.reward_models import Quest, QuestMerchant, Reward, Stamp, StampCard, StampProgress, Voucher
from coalition.programs.rewards import check_count, check_name, create_outcomes, own_reward_in
from coalition.programs.vouchers import cancel_voucher_in, issue_voucher_in

MAX_STAMPS = 100
STAMP_SCOPE = "stamp"
CARD_KEYS = KeyColumns(StampCard, key="idempotency_key", fingerprint="request_hash", scope=("merchant_id",))


@dataclass(frozen=True)
class CardRule:
    id: int
    stamps_required: int
    min_purchase_minor: int
    reward_id: int


@dataclass(frozen=True)
class QuestRule:
    id: int
    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclass(frozen=True)
class Programs:
    """Active stamp cards and quests by merchant."""

    cards: dict[int, list[CardRule]] = field(default_factory=dict)
    quests: dict[int, list[QuestRule]] = field(default_factory=dict)


class ProgramDirectory:
    """Per process: the merchants whose earns a program looks at (see the module docstring), re-read
    one read at a time (:class:`coalition.caching.Refreshed`)."""

    def __init__(self, db: Database, ttl_s: float) -> None:
        self._db = weakref.ref(db)  # the directories are kept by database, weakly
        self._programs = Refreshed(self._load, ttl_s)

    def invalidate(self) -> None:
        self._programs.invalidate()

    async def rules_for(self, merchant_id: int) -> tuple[list[CardRule], list[QuestRule]]:
        programs = await self._programs.get()
        return programs.cards.get(merchant_id, []), programs.quests.get(merchant_id, [])

    async def _load(self) -> Programs:
        programs, db = Programs(), self._db()
        assert db is not None, "a directory lives only as long as its database"
        async with db.read() as conn:
            for r in await conn.execute(select(StampCard.id, StampCard.merchant_id, StampCard.stamps_required,
                                               StampCard.min_purchase_minor, StampCard.reward_id)
                                        .where(StampCard.active.is_(True))):
                programs.cards.setdefault(r.merchant_id, []).append(
                    CardRule(r.id, r.stamps_required, r.min_purchase_minor, r.reward_id))
            for q in await conn.execute(select(QuestMerchant.merchant_id, Quest.id, Quest.starts_at, Quest.ends_at)
                                        .join(Quest, Quest.id == QuestMerchant.quest_id)):
                programs.quests.setdefault(q.merchant_id, []).append(QuestRule(q.id, q.starts_at, q.ends_at))
        return programs


_directories: weakref.WeakKeyDictionary[Database, ProgramDirectory] = weakref.WeakKeyDictionary()


def directory(db: Database, ttl_s: float = 5.0) -> ProgramDirectory:
    found = _directories.get(db)
    if found is None:
        found = _directories[db] = ProgramDirectory(db, ttl_s=ttl_s)
    return found


async def create_stamp_card(
    ledger: Ledger, *, merchant_id: int, name: str, stamps_required: int, min_purchase_minor: int, reward_id: int,
    idempotency_key: str, now: dt.datetime,
) -> Any:
    """Define a stamp card of ``merchant_id`` giving its own reward ``reward_id``, once per key."""
    key = check_idempotency_key(idempotency_key)
    name = check_name(name)
    stamps_required = check_count(stamps_required, "stampsRequired", "INVALID_STAMPS", MAX_STAMPS)
    min_purchase_minor = check_count(min_purchase_minor, "minPurchaseMinor", "INVALID_AMOUNT", MAX_POINTS, 0)
    fingerprint = core.request_hash("createStampCard", name=name, stamps=stamps_required,
                                    min_purchase=min_purchase_minor, reward=reward_id)
    async with ledger.db.transaction() as conn:
        # replay -> conflict -> suspended -> not found (coalition/ledger/idempotency.py)
        outcomes = create_outcomes(conn, CARD_KEYS, merchant_id, key, fingerprint, "create stamp cards")
        if (earlier := await outcomes.earlier()) is not None:
            return earlier
        await outcomes.check_merchant()
        await own_reward_in(conn, merchant_id, reward_id)
        card, created = await insert_once(conn, CARD_KEYS, {
            "merchant_id": merchant_id, "name": name, "stamps_required": stamps_required,
            "min_purchase_minor": min_purchase_minor, "reward_id": reward_id, "active": True,
            "idempotency_key": key, "request_hash": fingerprint, "created_at": now,
        })
    if created:
        directory(ledger.db).invalidate()
    return card


def _upsert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def stamp_earn(ledger: Ledger, card: CardRule, *, member_id: int, entry_id: int, now: dt.datetime) -> Any:
    """Stamp ``card`` for the earn ``entry_id`` (made at ``now``), once; returns the voucher a full card issued,
    or None."""
    async with ledger.db.transaction() as conn:
        make_insert = _upsert(conn)
        stamped = (await conn.execute(
            make_insert(Stamp).values(card_id=card.id, member_id=member_id, earn_entry_id=entry_id, removed=False,
                                      created_at=now).on_conflict_do_nothing().returning(Stamp.id)
        )).first()
        if stamped is None:
            return None
        # The progress row is the lock that serialises two earns of one member on one card.
        upsert = make_insert(StampProgress).values(card_id=card.id, member_id=member_id, total_stamps=1,
                                                   completed_cards=0, updated_at=now)
        progress = (await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["card_id", "member_id"],
                set_={"total_stamps": StampProgress.total_stamps + 1, "updated_at": now},
            ).returning(StampProgress.total_stamps, StampProgress.completed_cards)
        )).one()
        if progress.total_stamps < (progress.completed_cards + 1) * card.stamps_required:
            return None
        number = progress.completed_cards + 1
        await conn.execute(update(StampProgress).where(StampProgress.card_id == card.id,
                                                       StampProgress.member_id == member_id)
                           .values(completed_cards=number))
        reward = (await conn.execute(select(*Reward.__table__.c).where(Reward.id == card.reward_id))).one()
        # Issued now, also for a stamp applied late (a retried earn, the programs job): the voucher's
        # validity runs from when the member gets it, not from the purchase.
        return await issue_voucher_in(
            conn, reward=reward, member_id=member_id, scope=STAMP_SCOPE, key=f"card:{card.id}:{member_id}:{entry_id}",
            fingerprint=core.request_hash("stampCard", card=card.id), points=0, now=ledger.clock(),
            stamp_card_id=card.id, card_number=number)


async def unstamp_reversed(ledger: Ledger, *, earn_entry_id: int, now: dt.datetime) -> int:
    """Remove the stamps of a reversed earn (see the module docstring). Returns how many."""
    async with ledger.db.transaction() as conn:
        removed = list(await conn.execute(
            update(Stamp).where(Stamp.earn_entry_id == earn_entry_id, Stamp.removed.is_(False))
            .values(removed=True).returning(Stamp.card_id, Stamp.member_id)
        ))
        for card_id, member_id in removed:
            progress = (await conn.execute(
                update(StampProgress).where(StampProgress.card_id == card_id, StampProgress.member_id == member_id)
                .values(total_stamps=StampProgress.total_stamps - 1, updated_at=now)
                .returning(StampProgress.total_stamps, StampProgress.completed_cards)
            )).one()
            required = (await conn.execute(select(StampCard.stamps_required)
                                           .where(StampCard.id == card_id))).scalar_one()
            if progress.total_stamps >= progress.completed_cards * required:
                continue
            voucher_id = (await conn.execute(select(Voucher.id).where(
                Voucher.stamp_card_id == card_id, Voucher.member_id == member_id,
                Voucher.card_number == progress.completed_cards).order_by(Voucher.id.desc()).limit(1))).scalar()
            if voucher_id is not None and await cancel_voucher_in(ledger, conn, voucher_id, now):
                await conn.execute(update(StampProgress).where(StampProgress.card_id == card_id,
                                                               StampProgress.member_id == member_id)
                                   .values(completed_cards=StampProgress.completed_cards - 1))
    return len(removed)


async def stamp_cards_by_id(db: Database, card_id: int) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(*StampCard.__table__.c).where(StampCard.id == card_id))).first()


async def member_stamp_progress(db: Database, *, member_id: int, merchant_id: int | None) -> Sequence[Any]:
    """Each active card of the member's with its progress (a merchant: its own cards only)."""
    query = (select(StampProgress.total_stamps, StampProgress.completed_cards, *StampCard.__table__.c)
             .join(StampCard, StampCard.id == StampProgress.card_id)
             .where(StampProgress.member_id == member_id).order_by(StampCard.id))
    if merchant_id is not None:
        query = query.where(StampCard.merchant_id == merchant_id)
    async with db.read() as conn:
        return list(await conn.execute(query))


def stamps_on_current_card(total_stamps: int, completed_cards: int, stamps_required: int) -> int:
    return max(0, total_stamps - completed_cards * stamps_required)


async def list_stamp_cards(db: Database, *, merchant_id: int, limit: int) -> list[Any]:
    """A merchant's stamp cards, newest first, each with its reward's name (``reward_name``)."""
    query = (select(*StampCard.__table__.c, Reward.name.label("reward_name"))
             .join(Reward, Reward.id == StampCard.reward_id)
             .where(StampCard.merchant_id == merchant_id).order_by(StampCard.id.desc()).limit(limit))
    async with db.read() as conn:
        return list(await conn.execute(query))
