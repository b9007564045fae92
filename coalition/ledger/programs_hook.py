"""The ledger's one hook for programs (tiers, campaigns) on an earn; implemented by ``coalition.programs``.

The ledger cannot import the programs (they are a layer above it), so the app hands it an
:class:`EarnPrograms`. Per earn the ledger asks :meth:`EarnPrograms.terms` (from the programs'
caches, no database round trip) and:

- on PostgreSQL passes them to the one-statement earn (``fastpath``), which adds the points in
  the same statement, in the earn's own entry and lot (the earning merchant funds them);
- on the multi-statement path asks :meth:`EarnPrograms.extras` for the member's extra points
  (one query) before inserting the entry, and :meth:`EarnPrograms.record` after it.

Points the NETWORK funds (a tier policy may say so) cannot share the merchant's lot: they are a
network BONUS entry (``tier:<earn entry id>``) in the earn's transaction, multi-statement path only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class EarnTerms:
    """What programs may add to an earn at this merchant now (from caches)."""

    campaigns: bool = False  # the merchant has a campaign running
    tiers: bool = False  # tier multipliers apply and the earning merchant funds them
    network_tiers: bool = False  # tier multipliers apply and the network funds them (multi-statement path)
    base_tier_pct: int = 100  # the multiplier of a member no review has seen (the lowest tier's)

    @property
    def any(self) -> bool:
        return self.campaigns or self.tiers or self.network_tiers


NO_TERMS = EarnTerms()


@dataclass(frozen=True)
class Extras:
    """One earn's points: its base (the merchant's rate) and what programs add."""

    member_id: int
    base_points: int
    tier_points: int  # funded by the merchant (in the earn) or the network (a BONUS entry)
    tier_by_network: bool
    campaign_points: int

    @property
    def earn_points(self) -> int:
        """The earn entry's own points (the merchant's)."""
        return self.base_points + self.campaign_points + (0 if self.tier_by_network else self.tier_points)


class EarnPrograms(Protocol):
    async def terms(self, merchant_id: int, now: dt.datetime) -> EarnTerms: ...

    async def extras(self, conn: AsyncConnection, terms: EarnTerms, *, merchant_id: int, loyalty_id: str,
                     amount_minor: int, minor_per_unit: int, now: dt.datetime) -> Extras | None:
        """None when no active merchant or member matches (the ledger then explains why)."""
        ...

    async def record(self, conn: AsyncConnection, *, entry_id: int, merchant_id: int, extras: Extras,
                     tier_entry_id: int | None, now: dt.datetime) -> None: ...
