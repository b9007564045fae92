"""Partner quests: "visit 4 of these 6 shops within 30 days -> 500 bonus points".

An admin defines a quest (:func:`create_quest`) for a group of partners, with a window of
dates it runs in. A visit is an earn at one of its shops (:func:`record_visit`, called after
the earn like a stamp). A member completes the quest, once, when the distinct shops it
earned at within ``window_days`` of its latest visit (each shop counted by its latest visit)
reach ``visits_required``; the bonus is then paid in the same transaction as the completion row
(its primary key makes it once, however two earns race).

Funding (``funding``) and settlement. The bonus is the ledger's BONUS entry, issued by its
funder, so settlement charges the funder as for any points it issues and reimburses the
partner that later honors them:
- NETWORK: one entry of the network (issuer NULL), as a referral bonus;
- PARTNERS: the quest's shops split it evenly, one entry per shop, each under that shop's id.
  Rounding: each pays ``bonus // n`` points, and the first ``bonus % n`` shops in merchant id
  order one point more, so the shares sum to the bonus exactly; a shop whose share is 0
  writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.dialects import postgresql, sqlite

from coalition.db import Database
from coalition.errors import InvalidInput, NotFound, check_idempotency_key
from coalition.ledger import core
from coalition.ledger.idempotency import KeyColumns, as_model, insert_once, internal_key
from coalition.ledger.service import Ledger
from coalition.partners.models import Merchant
from coalition.programs.reward_models import Quest, QuestCompletion, QuestFunding, QuestMerchant, QuestVisit
from coalition.programs.rewards import check_count, check_name

MAX_SHOPS = 50
MAX_WINDOW_DAYS = 366
MAX_BONUS = 1_000_000
MAX_DURATION = dt.timedelta(days=2 * 366)
QUEST_KEYS = KeyColumns(Quest, key="idempotency_key", fingerprint="request_hash")
# One member's visits to one quest take turns on PostgreSQL: two earns at two shops recorded at
# the same moment would each count without the other's uncommitted visit, and neither would
# complete the quest. A transaction advisory lock in the two-key space ("QVST", a hash of the
# quest and member), as webhooks/service.py locks an owner; SQLite's writers take turns anyway.
_LOCK_VISITS = text(f"SELECT pg_advisory_xact_lock({int.from_bytes(b'QVST', 'big')}, hashtext(:who))")


def split_bonus(bonus: int, merchant_ids: Sequence[int]) -> list[tuple[int, int]]:
    """``(merchant, points)`` shares of ``bonus``: even, the remainder one point each to the lowest ids."""
    ordered = sorted(merchant_ids)
    base, extra = divmod(bonus, len(ordered))
    shares = [(m, base + (1 if i < extra else 0)) for i, m in enumerate(ordered)]
    return [(m, points) for m, points in shares if points > 0]


async def create_quest(
    db: Database, *, name: str, merchant_ids: Sequence[int], visits_required: int, window_days: int,
    bonus_points: int, funding: str, starts_at: dt.datetime, ends_at: dt.datetime, idempotency_key: str,
    now: dt.datetime,
) -> Any:
    """Define a quest (admin), once per key."""
    key = check_idempotency_key(idempotency_key)
    name = check_name(name)
    shops = sorted(set(merchant_ids))
    if not 1 <= len(shops) <= MAX_SHOPS or len(shops) != len(merchant_ids):
        raise InvalidInput(f"merchantIds must name 1 to {MAX_SHOPS} different shops", code="INVALID_QUEST",
                           field="merchantIds")
    visits_required = check_count(visits_required, "visitsRequired", "INVALID_QUEST", len(shops))
    window_days = check_count(window_days, "windowDays", "INVALID_QUEST", MAX_WINDOW_DAYS)
    bonus_points = check_count(bonus_points, "bonusPoints", "INVALID_QUEST", MAX_BONUS)
    try:
        funded_by = QuestFunding(funding)
    except ValueError:
        raise InvalidInput("funding must be NETWORK or PARTNERS", code="INVALID_QUEST", field="funding") from None
    if not (starts_at < ends_at and now < ends_at and ends_at - starts_at <= MAX_DURATION):
        raise InvalidInput("endsAt must be after startsAt and in the future, at most two years after startsAt",
                           code="INVALID_QUEST", field="endsAt")
    fingerprint = core.request_hash("createQuest", name=name, shops=shops, visits=visits_required, window=window_days,
                                    bonus=bonus_points, funding=funded_by.value, starts=starts_at, ends=ends_at)
    async with db.transaction() as conn:
        known = set((await conn.execute(select(Merchant.id).where(Merchant.id.in_(shops)))).scalars())
        if known != set(shops):
            raise NotFound("merchantIds names a shop that is not a partner", code="MERCHANT_NOT_FOUND",
                           field="merchantIds")
        quest, created = await insert_once(conn, QUEST_KEYS, {
            "name": name, "visits_required": visits_required, "window_days": window_days,
            "bonus_points": bonus_points, "funding": funded_by, "starts_at": starts_at, "ends_at": ends_at,
            "idempotency_key": key, "request_hash": fingerprint, "created_at": now,
        })
        if created:
            await conn.execute(insert(QuestMerchant),
                               [{"quest_id": quest.id, "merchant_id": m} for m in shops])
    if created:
        from coalition.programs.stamps import directory  # the per-process directory of programs

        directory(db).invalidate()
    return quest


async def record_visit(ledger: Ledger, *, quest_id: int, member_id: int, merchant_id: int,
                       now: dt.datetime) -> bool:
    """An earn at ``merchant_id`` counts toward the quest; True when it completed it (and paid the bonus)."""
    async with ledger.db.transaction() as conn:
        quest = (await conn.execute(select(*Quest.__table__.c).where(Quest.id == quest_id))).one()
        if not quest.starts_at <= now < quest.ends_at:
            return False
        done = (await conn.execute(select(QuestCompletion.member_id).where(
            QuestCompletion.quest_id == quest_id, QuestCompletion.member_id == member_id))).first()
        if done is not None:
            return False
        if conn.dialect.name == "postgresql":
            await conn.execute(_LOCK_VISITS, {"who": f"{quest_id}:{member_id}"})
        make_insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        # A visit replayed later (a retried earn, the catch-up job) never moves a shop's latest visit back.
        await conn.execute(
            make_insert(QuestVisit).values(quest_id=quest_id, member_id=member_id, merchant_id=merchant_id,
                                           last_visit_at=now)
            .on_conflict_do_update(index_elements=["quest_id", "member_id", "merchant_id"],
                                   set_={"last_visit_at": now}, where=QuestVisit.last_visit_at < now)
        )
        # The window ends at the member's latest visit, not at ``now``: a replayed old visit counts only
        # with the visits that were within window_days of it and of each other, as it would have live.
        visits = list((await conn.execute(select(QuestVisit.last_visit_at).where(
            QuestVisit.quest_id == quest_id, QuestVisit.member_id == member_id))).scalars())
        since = max(visits) - dt.timedelta(days=quest.window_days)
        visited = sum(1 for at in visits if at > since)
        if visited < quest.visits_required:
            return False
        completed = (await conn.execute(
            make_insert(QuestCompletion).values(quest_id=quest_id, member_id=member_id, completed_at=now)
            .on_conflict_do_nothing().returning(QuestCompletion.member_id)
        )).first()
        if completed is None:
            return False
        # Paid now, also for a visit replayed late (a retried earn, the programs job): the ledger's entries
        # keep their ids and times in step, as settlement and the programs job's window expect.
        paid_at = ledger.clock()
        key = internal_key("quest", quest_id, member_id)
        fingerprint = core.request_hash("questBonus", quest=quest_id, member=member_id)
        reason = f"quest: {quest.name}"[:128]
        if quest.funding == QuestFunding.NETWORK:
            shares: list[tuple[int | None, int]] = [(None, quest.bonus_points)]
        else:
            shops = list((await conn.execute(select(QuestMerchant.merchant_id)
                                              .where(QuestMerchant.quest_id == quest_id))).scalars())
            shares = list(split_bonus(quest.bonus_points, shops))
        for funder, points in shares:
            await ledger.award_bonus_in(conn, member_id=member_id, points=points, key=key, fingerprint=fingerprint,
                                        reason=reason, now=paid_at, funder=funder)
    return True


async def quest_by_id(db: Database, quest_id: int) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(*Quest.__table__.c).where(Quest.id == quest_id))).first()


async def quest_merchant_ids(db: Database, quest_id: int) -> list[int]:
    async with db.read() as conn:
        return list((await conn.execute(select(QuestMerchant.merchant_id).where(QuestMerchant.quest_id == quest_id)
                                        .order_by(QuestMerchant.merchant_id))).scalars())


async def member_quests(db: Database, *, member_id: int, merchant_id: int | None, now: dt.datetime) -> list[Any]:
    """Quests running now or completed by the member, each with the member's progress:
    ``(quest row, shops visited in the window, completed_at)``. A merchant: the quests it takes part in."""
    async with db.read() as conn:
        query = select(*Quest.__table__.c).where(Quest.starts_at <= now).order_by(Quest.id)
        if merchant_id is not None:
            query = query.join(QuestMerchant, (QuestMerchant.quest_id == Quest.id)
                               & (QuestMerchant.merchant_id == merchant_id))
        quests = [as_model(Quest, row) for row in await conn.execute(query)]
        completions = dict((await conn.execute(select(QuestCompletion.quest_id, QuestCompletion.completed_at)
                                               .where(QuestCompletion.member_id == member_id))).all())
        visits = list(await conn.execute(select(QuestVisit.quest_id, QuestVisit.last_visit_at)
                                         .where(QuestVisit.member_id == member_id)))
    out = []
    for quest in quests:
        if quest.ends_at <= now and quest.id not in completions:
            continue
        since = now - dt.timedelta(days=quest.window_days)
        visited = sum(1 for q, at in visits if q == quest.id and at > since)
        out.append((quest, min(visited, quest.visits_required) if quest.id in completions else visited,
                    completions.get(quest.id)))
    return out
