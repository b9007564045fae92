"""Programs for the earn benchmark: a tier policy with multipliers and a campaign for every member.

``enable`` makes every bench earn an earn with programs: a tier ladder whose lowest tier already
multiplies (so every member's earn reads its kept tier) and a MULTIPLIER campaign of the bench
merchant for all its members (10 % held out) that runs for ``run_s`` seconds; ``disable`` puts the
default ladder back (the campaign simply ends), so the next plain run is plain again.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from benchlib.env import bench_settings, log
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.network.store import InsightStore
from coalition.programs.campaigns import create_campaign
from coalition.programs.tier_models import EarnBonus
from coalition.programs.tier_review import set_tier_policy
from coalition.programs.tiers import DEFAULT_POLICY

LADDER = [{"name": "BASIC", "threshold_points": 0, "multiplier_percent": 110},
          {"name": "SILVER", "threshold_points": 1_000, "multiplier_percent": 125},
          {"name": "GOLD", "threshold_points": 50_000, "multiplier_percent": 150}]


async def enable(database_url: str, merchant_id: int, *, run_s: float, key: str) -> None:
    settings = bench_settings(database_url)
    db = Database(settings.database_url)
    try:
        now = utcnow()
        await set_tier_policy(db, tiers=LADDER, idempotency_key=f"{key}:tiers", now=now)
        campaign = await create_campaign(
            db, NetworkKeys.from_settings(settings), InsightStore(db), merchant_id=merchant_id, name="Bench double",
            kind="MULTIPLIER", multiplier_percent=200, control_percent=10, starts_at=now,
            ends_at=now + dt.timedelta(seconds=run_s), idempotency_key=key, now=now)
        log(f"programs on: tier ladder {[t['name'] for t in LADDER]}, campaign {campaign.id} until "
            f"{campaign.ends_at:%H:%M:%S}")
    finally:
        await db.dispose()


async def disable(database_url: str) -> None:
    db = Database(database_url)
    try:
        tiers = [{"name": t.name, "threshold_points": t.threshold_points} for t in DEFAULT_POLICY.tiers]
        await set_tier_policy(db, tiers=tiers, idempotency_key=f"bench-tiers-off:{utcnow().isoformat()}")
    finally:
        await db.dispose()


async def earns_with_program_points(database_url: str, since: dt.datetime) -> int:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(EarnBonus)
                                           .where(EarnBonus.created_at >= since))).scalar_one())
    finally:
        await db.dispose()
