"""Programs on the earn path: the ledger's :class:`~coalition.ledger.programs_hook.EarnPrograms`.

``terms`` answers from two per-process caches (the tier policy, the campaigns not yet ended),
each re-read when this process wrote a policy or campaign (a generation) or after ``ttl_s``
(another process's write): a plain earn costs no extra round trip. The one-statement earn on
PostgreSQL then looks the member up itself; the multi-statement path asks :meth:`extras`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.caching import Refreshed
from coalition.db import Database, utcnow
from coalition.ledger.programs_hook import EarnTerms, Extras
from coalition.members.models import Member
from coalition.partners.models import Merchant, MerchantStatus
from coalition.programs import tier_review
from coalition.programs.campaign_models import Campaign, CampaignAudience
from coalition.programs.tier_models import EarnBonus, MemberTier
from coalition.programs.tier_review import TierPolicyCache
from coalition.programs.tiers import TierPolicy, extra_points


class CampaignCache:
    """``(merchant_id, starts_at, ends_at)`` of every campaign not ended, re-read like the policy cache
    (:class:`coalition.caching.Refreshed`: one read at a time)."""

    def __init__(self, db: Database, ttl_s: float = 2.0) -> None:
        self.db = db
        self._asked_at = utcnow()  # the campaigns read are those not ended at the time the earn asked for
        self._running = Refreshed(self._read, ttl_s, tier_review.generation)

    async def _read(self) -> dict[int, list[tuple[dt.datetime, dt.datetime]]]:
        asked_at = self._asked_at
        running: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {}
        async with self.db.read() as conn:
            rows = await conn.execute(select(Campaign.merchant_id, Campaign.starts_at, Campaign.ends_at)
                                      .where(Campaign.ends_at > asked_at))
            for merchant, starts_at, ends_at in rows:
                running.setdefault(int(merchant), []).append((starts_at, ends_at))
        return running

    async def running(self, merchant_id: int, now: dt.datetime) -> bool:
        self._asked_at = now
        running = await self._running.get()
        return any(starts_at <= now < ends_at for starts_at, ends_at in running.get(merchant_id, ()))


class ProgramHook:
    """Tiers and campaigns for the ledger's earns (give one to ``Ledger(..., programs=...)``)."""

    def __init__(self, db: Database, ttl_s: float = 2.0) -> None:
        self.tier_policies = TierPolicyCache(db, ttl_s)
        self.campaigns = CampaignCache(db, ttl_s)
        self._terms: tuple[TierPolicy, dict[bool, EarnTerms]] | None = None  # a policy's terms, made once

    def _policy_terms(self, policy: TierPolicy) -> dict[bool, EarnTerms]:
        """The terms under ``policy``, without and with a campaign running."""
        if self._terms is None or self._terms[0] is not policy:
            tiers = policy.has_multipliers
            by_network = policy.bonus_funder == "NETWORK"
            self._terms = (policy, {campaigns: EarnTerms(
                campaigns=campaigns, tiers=tiers and not by_network, network_tiers=tiers and by_network,
                base_tier_pct=policy.tiers[0].multiplier_percent) for campaigns in (False, True)})
        return self._terms[1]

    async def terms(self, merchant_id: int, now: dt.datetime) -> EarnTerms:
        by_campaign = self._policy_terms(await self.tier_policies.policy())
        return by_campaign[await self.campaigns.running(merchant_id, now)]

    async def extras(self, conn: AsyncConnection, terms: EarnTerms, *, merchant_id: int, loyalty_id: str,
                     amount_minor: int, minor_per_unit: int, now: dt.datetime) -> Extras | None:
        row = (await conn.execute(
            select(Member.id, Merchant.earn_rate_points_per_unit)
            .join(Merchant, (Merchant.id == merchant_id) & (Merchant.status == MerchantStatus.ACTIVE))
            .where(Member.loyalty_id == loyalty_id))).first()
        if row is None:
            return None
        member_id = int(row[0])
        base = amount_minor * int(row[1]) // minor_per_unit
        tier_points = 0
        if terms.tiers or terms.network_tiers:
            kept = (await conn.execute(select(MemberTier.multiplier_percent)
                                       .where(MemberTier.member_id == member_id))).scalar()
            tier_points = extra_points(base, terms.base_tier_pct if kept is None else int(kept))
        campaign_points = 0
        if terms.campaigns:
            offers = await conn.execute(
                select(Campaign.kind, Campaign.multiplier_percent, Campaign.bonus_points)
                .join(CampaignAudience, CampaignAudience.campaign_id == Campaign.id)
                .where(CampaignAudience.member_id == member_id, CampaignAudience.treated.is_(True),
                       Campaign.merchant_id == merchant_id, Campaign.starts_at <= now, Campaign.ends_at > now))
            for kind, multiplier, bonus in offers:
                campaign_points += extra_points(base, multiplier or 100) if kind == "MULTIPLIER" else bonus or 0
        if base <= 0:  # the ledger refuses it (PURCHASE_TOO_SMALL): no program points on nothing
            tier_points = campaign_points = 0
        return Extras(member_id=member_id, base_points=base, tier_points=tier_points,
                      tier_by_network=terms.network_tiers, campaign_points=campaign_points)

    async def record(self, conn: AsyncConnection, *, entry_id: int, merchant_id: int, extras: Extras,
                     tier_entry_id: int | None, now: dt.datetime) -> None:
        await conn.execute(insert(EarnBonus).values(
            entry_id=entry_id, member_id=extras.member_id, merchant_id=merchant_id, base_points=extras.base_points,
            tier_points=extras.tier_points, tier_entry_id=tier_entry_id, campaign_points=extras.campaign_points,
            created_at=now))
