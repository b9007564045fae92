"""An overview of the network's programs, for the CLI (``coalition programs``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from coalition.db import Database
from coalition.partners.models import Merchant
from coalition.programs.reward_models import (
    Quest,
    QuestCompletion,
    QuestMerchant,
    Reward,
    StampCard,
    StampProgress,
    Voucher,
    VoucherStatus,
)


@dataclass(frozen=True)
class RewardLine:
    merchant: str
    name: str
    points_cost: int
    stock_left: int | None
    vouchers: dict[str, int]  # by status


@dataclass(frozen=True)
class CardLine:
    merchant: str
    name: str
    stamps_required: int
    min_purchase_minor: int
    members: int
    cards_filled: int


@dataclass(frozen=True)
class QuestLine:
    name: str
    shops: int
    visits_required: int
    window_days: int
    bonus_points: int
    funding: str
    completions: int


async def overview(db: Database) -> tuple[list[RewardLine], list[CardLine], list[QuestLine]]:
    async with db.read() as conn:
        by_status: dict[int, dict[str, int]] = {}
        for reward_id, status, n in await conn.execute(
                select(Voucher.reward_id, Voucher.status, func.count()).group_by(Voucher.reward_id, Voucher.status)):
            by_status.setdefault(reward_id, {})[str(status)] = int(n)
        rewards = [RewardLine(r.merchant, r.name, r.points_cost, r.stock_left,
                              {s.value: by_status.get(r.id, {}).get(s.value, 0) for s in VoucherStatus})
                   for r in await conn.execute(select(Reward.id, Merchant.name.label("merchant"), Reward.name,
                                                      Reward.points_cost, Reward.stock_left)
                                               .join(Merchant, Merchant.id == Reward.merchant_id).order_by(Reward.id))]
        progress = dict((card_id, (int(members), int(filled))) for card_id, members, filled in await conn.execute(
            select(StampProgress.card_id, func.count(), func.sum(StampProgress.completed_cards))
            .group_by(StampProgress.card_id)))
        cards = [CardLine(c.merchant, c.name, c.stamps_required, c.min_purchase_minor, *progress.get(c.id, (0, 0)))
                 for c in await conn.execute(select(StampCard.id, Merchant.name.label("merchant"), StampCard.name,
                                                    StampCard.stamps_required, StampCard.min_purchase_minor)
                                             .join(Merchant, Merchant.id == StampCard.merchant_id)
                                             .order_by(StampCard.id))]
        shops = dict((await conn.execute(select(QuestMerchant.quest_id, func.count())
                                         .group_by(QuestMerchant.quest_id))).all())
        done = dict((await conn.execute(select(QuestCompletion.quest_id, func.count())
                                        .group_by(QuestCompletion.quest_id))).all())
        quests = [QuestLine(q.name, int(shops.get(q.id, 0)), q.visits_required, q.window_days, q.bonus_points,
                            str(q.funding), int(done.get(q.id, 0)))
                  for q in await conn.execute(select(Quest).order_by(Quest.id))]
    return rewards, cards, quests
