"""A small network for the program tests (not a test module): shops A and B, members of A, a ledger
with the programs' hook, and helpers to create campaigns and read what each earn got."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.models import Entry
from coalition.ledger.service import Ledger
from coalition.members.service import enroll_member
from coalition.network.store import InsightStore
from coalition.partners.service import onboard_merchant
from coalition.programs.campaign_models import CampaignAudience
from coalition.programs.campaigns import create_campaign
from coalition.programs.earning import ProgramHook


@dataclass
class Shops:
    db: Database
    keys: NetworkKeys
    ledger: Ledger
    clock: Any
    a: Any = None
    b: Any = None
    members: list[Any] = field(default_factory=list)
    counter: int = 0

    def key(self, prefix: str = "k") -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    async def earn(self, member: Any, amount_minor: int = 1000, shop: Any = None, key: str | None = None) -> Any:
        return await self.ledger.earn(merchant_id=(shop or self.a).id, loyalty_id=member.loyalty_id,
                                      purchase_amount_minor=amount_minor, idempotency_key=key or self.key("earn"))

    async def campaign(self, **fields: Any) -> Any:
        values: dict[str, Any] = {"name": "Double points", "kind": "MULTIPLIER", "multiplier_percent": 200,
                                  "segment": None, "control_percent": 50, "starts_at": self.clock.now,
                                  "ends_at": self.clock.now + dt.timedelta(days=7),
                                  "idempotency_key": self.key("campaign")} | fields
        merchant = values.pop("merchant", self.a)
        return await create_campaign(self.db, self.keys, InsightStore(self.db), merchant_id=merchant.id,
                                     now=self.clock.now, **values)

    async def treated(self, campaign_id: int) -> dict[int, bool]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(CampaignAudience.member_id, CampaignAudience.treated)
                                      .where(CampaignAudience.campaign_id == campaign_id))
            return {int(m): bool(t) for m, t in rows}

    async def entries(self, member_id: int) -> list[Any]:
        async with self.db.read() as conn:
            return list(await conn.execute(select(Entry).where(Entry.member_id == member_id).order_by(Entry.id)))


async def shops(db: Database, settings: Settings, keys: NetworkKeys, clock: Any, members: int = 4) -> Shops:
    ledger = Ledger(db, settings, clock=clock, keys=keys, programs=ProgramHook(db, ttl_s=0))
    net = Shops(db, keys, ledger, clock)
    net.a = (await onboard_merchant(db, name="Shop A", category="cafe", earn_rate_points_per_unit=1)).merchant
    net.b = (await onboard_merchant(db, name="Shop B", category="books", earn_rate_points_per_unit=1)).merchant
    for i in range(members):
        enrolled = await enroll_member(db, keys, merchant_id=net.a.id, idempotency_key=f"enroll-{i}", now=clock.now)
        net.members.append(enrolled.member)
    return net
