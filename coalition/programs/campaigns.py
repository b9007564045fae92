"""Campaigns: a merchant's multiplier or bonus for a segment of its members, with a control group.

The audience is fixed when the campaign is created: every member of the merchant (enrolled
there or with any transaction there) or those the newest stored analysis puts in the segment
(TRULY_LOYAL, ACCESSIBLE, TRAPPED, HIGH_RISK). Each is held out when its draw
(:meth:`coalition.crypto.NetworkKeys.campaign_draw`, an HMAC of campaign and member id under a
key derived from the master secret: stable, and not guessable by a merchant or member) is below
``controlPercent`` x 100. The earn path adds the offer to treated members' earns at the
merchant while the campaign runs (``coalition.programs.earning``, ``ledger/fastpath.py``).

Bad input is refused before anything is written; two campaigns of a merchant may not overlap
in time on the same segment (a campaign for every member overlaps every segment). The check
and the insert run under the merchant's row lock, so two concurrent requests cannot both pass.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, or_, select, true, union
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import check_idempotency_key, check_text
from coalition.ledger.core import request_hash
from coalition.ledger.idempotency import KeyColumns, as_model, find_earlier
from coalition.ledger.models import Entry
from coalition.members.models import Member
from coalition.network.loyalty import LoyaltyType
from coalition.network.store import InsightStore
from coalition.partners.models import Merchant
from coalition.programs import tier_review
from coalition.programs.campaign_models import Campaign, CampaignAudience
from coalition.programs.errors import InvalidCampaign, OverlappingCampaign, SegmentNotAnalyzed

KINDS = ("MULTIPLIER", "BONUS")
SEGMENTS = tuple(t.name for t in LoyaltyType)
MAX_NAME_LENGTH = 100
MAX_MULTIPLIER_PERCENT = 1000  # 10x
MAX_BONUS_POINTS = 100_000
MAX_CONTROL_PERCENT = 90
MAX_DURATION = dt.timedelta(days=366)
MAX_START_AHEAD = dt.timedelta(days=366)
CAMPAIGN_KEYS = KeyColumns(Campaign, key="idempotency_key", fingerprint="request_hash", scope=("merchant_id",))
AUDIENCE_CHUNK = 5000


@dataclass(frozen=True)
class CampaignSpec:
    """A checked ``createCampaign`` input."""

    name: str
    kind: str
    multiplier_percent: int | None
    bonus_points: int | None
    segment: str | None
    control_percent: int
    starts_at: dt.datetime
    ends_at: dt.datetime


def _bounded(value: Any, field: str, code: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidCampaign(f"{field} must be a whole number from {low} to {high}, got {value!r}",
                              code=code, field=field)
    return value


def _when(value: Any, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidCampaign(f"{field} must be a date-time with a time zone", code="INVALID_PERIOD", field=field)
    return value.astimezone(dt.UTC)


def validate_campaign(*, name: Any, kind: Any, multiplier_percent: Any = None, bonus_points: Any = None,
                      segment: Any = None, control_percent: Any, starts_at: Any, ends_at: Any,
                      now: dt.datetime) -> CampaignSpec:
    """Every field bounded; :class:`InvalidCampaign` names the first that is not."""
    checked_name = check_text(name, "name", MAX_NAME_LENGTH, required=True)
    assert checked_name is not None
    if kind not in KINDS:
        raise InvalidCampaign(f"kind must be one of {', '.join(KINDS)}", code="INVALID_KIND", field="kind")
    if kind == "MULTIPLIER":
        multiplier_percent = _bounded(multiplier_percent, "multiplierPercent", "INVALID_MULTIPLIER", 101,
                                      MAX_MULTIPLIER_PERCENT)
        if bonus_points is not None:
            raise InvalidCampaign("a MULTIPLIER campaign takes multiplierPercent, not bonusPoints",
                                  code="INVALID_BONUS_POINTS", field="bonusPoints")
    else:
        bonus_points = _bounded(bonus_points, "bonusPoints", "INVALID_BONUS_POINTS", 1, MAX_BONUS_POINTS)
        if multiplier_percent is not None:
            raise InvalidCampaign("a BONUS campaign takes bonusPoints, not multiplierPercent",
                                  code="INVALID_MULTIPLIER", field="multiplierPercent")
    if segment is not None and segment not in SEGMENTS:
        raise InvalidCampaign(f"segment must be one of {', '.join(SEGMENTS)}, or null for every member",
                              code="INVALID_SEGMENT", field="segment")
    control = _bounded(control_percent, "controlPercent", "INVALID_CONTROL_PERCENT", 0, MAX_CONTROL_PERCENT)
    start, end = _when(starts_at, "startsAt"), _when(ends_at, "endsAt")
    start = max(start, now)  # at or before now: the campaign runs at once
    if end <= start:
        raise InvalidCampaign("endsAt must be after startsAt and in the future", code="INVALID_PERIOD",
                              field="endsAt")
    if end - start > MAX_DURATION:
        raise InvalidCampaign(f"a campaign runs at most {MAX_DURATION.days} days", code="INVALID_PERIOD",
                              field="endsAt")
    if start - now > MAX_START_AHEAD:
        raise InvalidCampaign(f"startsAt is at most {MAX_START_AHEAD.days} days ahead", code="INVALID_PERIOD",
                              field="startsAt")
    return CampaignSpec(checked_name, kind, multiplier_percent, bonus_points, segment, control, start, end)


async def audience(db: Database, store: InsightStore, merchant_id: int, segment: str | None) -> list[int]:
    """The member ids a campaign for ``segment`` reaches at ``merchant_id``, ascending."""
    if segment is None:
        query = union(select(Member.id).where(Member.enrolled_by_merchant_id == merchant_id),
                      select(Entry.member_id).where(Entry.merchant_id == merchant_id))
        async with db.read() as conn:
            return sorted(int(row[0]) for row in await conn.execute(query))
    columns = await store.rfm_columns(merchant_id)
    if columns is None:
        raise SegmentNotAnalyzed("no stored analysis names this merchant's segments yet: run the analysis "
                                 "(coalition analyze) or target every member (segment null)", field="segment")
    wanted = LoyaltyType[segment].value
    return sorted(columns["member_ids"][columns["type"] == wanted].tolist())


async def _lock_merchant(conn: AsyncConnection, merchant_id: int) -> None:
    # Serializes one merchant's campaign writes (SQLite: BEGIN IMMEDIATE already did).
    await conn.execute(select(Merchant.id).where(Merchant.id == merchant_id).with_for_update())


async def create_campaign(db: Database, keys: NetworkKeys, store: InsightStore, *, merchant_id: int, name: Any,
                          kind: Any, multiplier_percent: Any = None, bonus_points: Any = None, segment: Any = None,
                          control_percent: Any, starts_at: Any, ends_at: Any, idempotency_key: Any,
                          now: dt.datetime) -> Any:
    """Create the campaign and fix its audience; the same key and input again: the same campaign."""
    key = check_idempotency_key(idempotency_key)
    spec = validate_campaign(name=name, kind=kind, multiplier_percent=multiplier_percent, bonus_points=bonus_points,
                             segment=segment, control_percent=control_percent, starts_at=starts_at, ends_at=ends_at,
                             now=now)
    fingerprint = request_hash("campaign", name=spec.name, kind=spec.kind, multiplier=spec.multiplier_percent,
                               bonus=spec.bonus_points, segment=spec.segment, control=spec.control_percent,
                               starts_at=starts_at, ends_at=ends_at)
    earlier = await _by_key(db, merchant_id, key, fingerprint)
    if earlier is not None:
        return earlier
    members = await audience(db, store, merchant_id, spec.segment)
    async with db.transaction() as conn:
        await _lock_merchant(conn, merchant_id)
        again = await find_earlier(conn, CAMPAIGN_KEYS, (merchant_id,), key, fingerprint)
        if again is not None:
            return again
        same_segment = (true() if spec.segment is None
                        else or_(Campaign.segment.is_(None), Campaign.segment == spec.segment))
        clash = (await conn.execute(select(Campaign.name).where(
            Campaign.merchant_id == merchant_id, same_segment,
            Campaign.starts_at < spec.ends_at, Campaign.ends_at > spec.starts_at).limit(1))).scalar()
        if clash is not None:
            raise OverlappingCampaign(f"campaign {clash!r} already runs for this segment in that period",
                                      field="startsAt")
        campaign_id = (await conn.execute(insert(Campaign).values(
            merchant_id=merchant_id, name=spec.name, kind=spec.kind, multiplier_percent=spec.multiplier_percent,
            bonus_points=spec.bonus_points, segment=spec.segment, control_percent=spec.control_percent,
            starts_at=spec.starts_at, ends_at=spec.ends_at, idempotency_key=key, request_hash=fingerprint,
            created_at=now).returning(Campaign.id))).scalar_one()
        cut = spec.control_percent * 100
        rows = [{"campaign_id": campaign_id, "member_id": m, "treated": keys.campaign_draw(campaign_id, m) >= cut}
                for m in members]
        for i in range(0, len(rows), AUDIENCE_CHUNK):
            await conn.execute(insert(CampaignAudience), rows[i:i + AUDIENCE_CHUNK])
        created = _campaign((await conn.execute(select(Campaign).where(Campaign.id == campaign_id))).one())
    tier_review.bump_generation()  # this process's earn path sees the campaign at once
    return created


async def _by_key(db: Database, merchant_id: int, key: str, fingerprint: str) -> Any:
    async with db.read() as conn:
        return await find_earlier(conn, CAMPAIGN_KEYS, (merchant_id,), key, fingerprint)


def _campaign(row: Any) -> Campaign:
    return as_model(Campaign, row)


async def campaign_by_id(db: Database, campaign_id: int) -> Campaign | None:
    async with db.read() as conn:
        row = (await conn.execute(select(Campaign).where(Campaign.id == campaign_id))).first()
    return None if row is None else _campaign(row)


async def list_campaigns(db: Database, *, merchant_id: int | None, before_id: int | None,
                         limit: int) -> list[Campaign]:
    """Newest first; ``merchant_id`` None: every merchant's (admin)."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if merchant_id is not None:
        query = query.where(Campaign.merchant_id == merchant_id)
    if before_id is not None:
        query = query.where(Campaign.id < before_id)
    async with db.read() as conn:
        return [_campaign(row) for row in await conn.execute(query)]
