"""A campaign's result as last computed: stored snapshots, so the console page and the API don't recount the ledger.

Counting a campaign's result (:func:`campaign_result`) joins its audience to every earn of each
member in the period: about 0.4 s for 100,000 members. The worker's ``campaigns`` job
(:func:`refresh_results`, every ``COALITION_CAMPAIGN_RESULTS_INTERVAL_S``, default 300 s)
recomputes each campaign that has started and whose result is not final, and stores it; the page
and the API read the stored result (:func:`latest_result`) with the moment it counts up to
(``as_of``), shown as "as of <time>". There is one way to compute a result, the live one: a
snapshot is that computation's figures at ``as_of``.

A reader computes live and stores when there is no snapshot yet (a campaign just created, or no
worker running: tests, a small embedded set-up), when the snapshot was computed with another
minimum group size, or when it is older than twice the job's interval (the worker is down: the
page never shows figures older than that). With the job off (interval 0) every read computes.

Final: refunds of purchases in the period change the result after the campaign has ended
(a refunded earn is left out). The ledger sets no deadline on refunds; we take
:data:`SETTLE` (30 days, a usual window for returns) after the end as the moment a result is
settled. A snapshot as of then or later is final and never recomputed; a refund later still is
not reflected.

Two workers (or a worker and a reader) at once are harmless: each writes with an upsert that
keeps the row with the later ``as_of``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite

from coalition.db import Database
from coalition.programs.campaign_models import Campaign, CampaignResultSnapshot
from coalition.programs.campaign_results import CampaignResult, campaign_result
from coalition.programs.lift import Lift

SETTLE = dt.timedelta(days=30)  # after a campaign's end, its result no longer changes (refunds)
STALE_AFTER_INTERVALS = 2  # a reader recomputes a snapshot older than this many job intervals


@dataclass(frozen=True)
class StoredResult:
    result: CampaignResult
    as_of: dt.datetime  # the ledger is counted up to here
    final: bool  # settled: will not change any more


def is_final(campaign: Any, as_of: dt.datetime) -> bool:
    ends_at: dt.datetime = campaign.ends_at
    return as_of >= ends_at + SETTLE


async def compute_and_store(db: Database, campaign: Any, now: dt.datetime, min_group: int) -> StoredResult:
    """Compute the campaign's result as of ``now`` (live) and store it unless a later one is stored already."""
    result = await campaign_result(db, campaign, now, min_group)
    stored = StoredResult(result, now, is_final(campaign, now))
    values = {"campaign_id": campaign.id, "as_of": now, "computed_at": now, "final": stored.final,
              "min_group": min_group, **_columns(result)}
    async with db.transaction() as conn:
        make_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = make_insert(CampaignResultSnapshot).values(**values)
        newer = or_(CampaignResultSnapshot.as_of < stmt.excluded.as_of,
                    CampaignResultSnapshot.min_group != stmt.excluded.min_group)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[CampaignResultSnapshot.campaign_id],
            set_={name: stmt.excluded[name] for name in values if name != "campaign_id"}, where=newer))
    return stored


async def latest_result(db: Database, campaign: Any, now: dt.datetime, min_group: int,
                        interval_s: float) -> StoredResult:
    """The campaign's stored result, or the live one (then stored) when none is usable (see the module)."""
    async with db.read() as conn:
        row = (await conn.execute(select(CampaignResultSnapshot)
                                  .where(CampaignResultSnapshot.campaign_id == campaign.id))).first()
    snap = None if row is None else row._mapping
    if snap is not None and snap["min_group"] == min_group and (
            snap["final"] or (now - snap["as_of"]).total_seconds() < interval_s * STALE_AFTER_INTERVALS):
        return StoredResult(_result(snap), snap["as_of"], snap["final"])
    return await compute_and_store(db, campaign, now, min_group)


async def refresh_results(db: Database, now: dt.datetime, min_group: int) -> int:
    """The worker's job: recompute every started campaign whose stored result is not final. Returns how many."""
    query = (select(Campaign).outerjoin(CampaignResultSnapshot, CampaignResultSnapshot.campaign_id == Campaign.id)
             .where(Campaign.starts_at <= now,
                    or_(CampaignResultSnapshot.campaign_id.is_(None), CampaignResultSnapshot.final.is_(False),
                        CampaignResultSnapshot.min_group != min_group))
             .order_by(Campaign.id))
    async with db.read() as conn:
        campaigns = (await conn.execute(query)).all()
    for campaign in campaigns:
        await compute_and_store(db, campaign, now, min_group)
    return len(campaigns)


def _columns(r: CampaignResult) -> dict[str, Any]:
    return {
        "treated_members": r.treated_members, "control_members": r.control_members,
        "treated_spend_minor": r.treated_spend_minor, "control_spend_minor": r.control_spend_minor,
        "treated_visits": r.treated_visits, "control_visits": r.control_visits,
        "treated_partner_visits": r.treated_partner_visits, "control_partner_visits": r.control_partner_visits,
        "bonus_points": r.bonus_points,
        "spend_lift_percent": r.spend.percent, "spend_p_value": r.spend.p_value,
        "visits_lift_percent": r.visits.percent, "visits_p_value": r.visits.p_value,
        "partner_visits_lift_percent": r.partner_visits.percent,
        "partner_visits_p_value": r.partner_visits.p_value,
    }


def _result(s: Any) -> CampaignResult:
    return CampaignResult(
        treated_members=s["treated_members"], control_members=s["control_members"],
        treated_spend_minor=s["treated_spend_minor"], control_spend_minor=s["control_spend_minor"],
        treated_visits=s["treated_visits"], control_visits=s["control_visits"],
        treated_partner_visits=s["treated_partner_visits"], control_partner_visits=s["control_partner_visits"],
        spend=Lift(s["spend_lift_percent"], s["spend_p_value"]),
        visits=Lift(s["visits_lift_percent"], s["visits_p_value"]),
        partner_visits=Lift(s["partner_visits_lift_percent"], s["partner_visits_p_value"]),
        bonus_points=s["bonus_points"])
