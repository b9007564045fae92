"""What a campaign did: treated vs control members, their spend and visits, and the lift.

Counted over the campaign's period so far (``startsAt`` to the earlier of ``endsAt`` and now),
from the ledger: a visit is an EARN entry (a purchase), spend its ``amount_minor``; earns
reversed since are left out (refunds). Visits to the merchant's partners (every other merchant
of the network) measure cross-partner lift: did the offer bring its customers to the partners?
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import aliased

from coalition.db import Database
from coalition.ledger.models import Entry, EntryKind
from coalition.programs.campaign_models import CampaignAudience
from coalition.programs.lift import Lift, lift
from coalition.programs.tier_models import EarnBonus


@dataclass(frozen=True)
class CampaignResult:
    treated_members: int
    control_members: int
    treated_spend_minor: int
    control_spend_minor: int
    treated_visits: int
    control_visits: int
    treated_partner_visits: int
    control_partner_visits: int
    spend: Lift  # per-member spend at the merchant
    visits: Lift  # per-member visits at the merchant
    partner_visits: Lift  # per-member visits at the merchant's partners
    bonus_points: int  # points the campaign's offers added to treated members' earns at the merchant


async def campaign_result(db: Database, campaign: Any, now: dt.datetime, min_group: int) -> CampaignResult:
    start, end = campaign.starts_at, min(campaign.ends_at, now)
    reversal = aliased(Entry)
    earns = and_(Entry.member_id == CampaignAudience.member_id, Entry.kind == EntryKind.EARN,
                 Entry.created_at >= start, Entry.created_at < end,
                 ~exists().where(reversal.reverses_id == Entry.id))
    here = Entry.merchant_id == campaign.merchant_id
    query = (
        select(CampaignAudience.member_id, CampaignAudience.treated,
               func.coalesce(func.sum(case((here, Entry.amount_minor), else_=0)), 0),
               func.count(case((here, Entry.id))),
               func.count(case((Entry.merchant_id != campaign.merchant_id, Entry.id))))
        .select_from(CampaignAudience).outerjoin(Entry, earns)
        .where(CampaignAudience.campaign_id == campaign.id)
        .group_by(CampaignAudience.member_id, CampaignAudience.treated)
    )
    bonus = (select(func.coalesce(func.sum(EarnBonus.campaign_points), 0))
             .join(CampaignAudience, and_(CampaignAudience.member_id == EarnBonus.member_id,
                                          CampaignAudience.campaign_id == campaign.id,
                                          CampaignAudience.treated.is_(True)))
             .where(EarnBonus.merchant_id == campaign.merchant_id, EarnBonus.created_at >= start,
                    EarnBonus.created_at < end))
    groups: dict[bool, tuple[list[int], list[int], list[int]]] = {True: ([], [], []), False: ([], [], [])}
    async with db.read() as conn:
        for _, treated, spend, visits, partner_visits in await conn.execute(query):
            spends, visit_counts, partner_counts = groups[bool(treated)]
            spends.append(int(spend))
            visit_counts.append(int(visits))
            partner_counts.append(int(partner_visits))
        bonus_points = int((await conn.execute(bonus)).scalar_one())
    t, c = groups[True], groups[False]
    return CampaignResult(
        treated_members=len(t[0]), control_members=len(c[0]),
        treated_spend_minor=sum(t[0]), control_spend_minor=sum(c[0]),
        treated_visits=sum(t[1]), control_visits=sum(c[1]),
        treated_partner_visits=sum(t[2]), control_partner_visits=sum(c[2]),
        spend=lift(t[0], c[0], min_group), visits=lift(t[1], c[1], min_group),
        partner_visits=lift(t[2], c[2], min_group), bonus_points=bonus_points,
    )
