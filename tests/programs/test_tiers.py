"""Status tiers: the policy's bounds, the rules, and a review that equals a brute-force recomputation."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Base, Database
from coalition.ledger.models import Entry, EntryKind
from coalition.members.service import enroll_member
from coalition.partners.service import onboard_merchant
from coalition.programs.errors import InvalidTierPolicy
from coalition.programs.tier_models import MemberTier, TierPolicyVersion
from coalition.programs.tier_review import review_tiers
from coalition.programs.tiers import Tier, TierPolicy, evaluate, extra_points, validate_tier_policy

T0 = dt.datetime(2025, 3, 31, 12, 0, tzinfo=dt.UTC)
LADDER = [{"name": "BASIC", "threshold_points": 0}, {"name": "SILVER", "threshold_points": 100,
                                                      "multiplier_percent": 125}]


@pytest.mark.parametrize(("change", "code"), [
    ({"tiers": []}, "INVALID_TIERS"),
    ({"tiers": [{"name": f"T{i}", "threshold_points": i} for i in range(11)]}, "INVALID_TIERS"),
    ({"tiers": [{"name": "basic", "threshold_points": 0}]}, "INVALID_TIER_NAME"),
    ({"tiers": [{"name": "A" * 33, "threshold_points": 0}]}, "INVALID_TIER_NAME"),
    ({"tiers": [LADDER[0], {**LADDER[1], "name": "BASIC"}]}, "INVALID_TIER_NAME"),
    ({"tiers": [{"name": "BASIC", "threshold_points": 5}]}, "INVALID_THRESHOLD"),
    ({"tiers": [LADDER[0], {**LADDER[1], "threshold_points": 0}]}, "INVALID_THRESHOLD"),
    ({"tiers": [LADDER[0], {**LADDER[1], "threshold_points": -5}]}, "INVALID_THRESHOLD"),
    ({"tiers": [LADDER[0], {**LADDER[1], "threshold_points": 2**31}]}, "INVALID_THRESHOLD"),
    ({"tiers": [LADDER[0], {**LADDER[1], "multiplier_percent": 99}]}, "INVALID_MULTIPLIER"),
    ({"tiers": [LADDER[0], {**LADDER[1], "multiplier_percent": 1001}]}, "INVALID_MULTIPLIER"),
    ({"window": "WEEKLY"}, "INVALID_WINDOW"),
    ({"window_months": 0}, "INVALID_WINDOW"),
    ({"window_months": 37}, "INVALID_WINDOW"),
    ({"grace_days": -1}, "INVALID_GRACE_DAYS"),
    ({"grace_days": 367}, "INVALID_GRACE_DAYS"),
    ({"bonus_funder": "SOMEONE"}, "INVALID_BONUS_FUNDER"),
])
def test_every_policy_field_is_bounded(change: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidTierPolicy) as refused:
        validate_tier_policy(**({"tiers": LADDER} | change))
    assert refused.value.code == code


def test_the_multiplier_rounds_down() -> None:
    assert [extra_points(p, 150) for p in (0, 1, 2, 3, 99)] == [0, 0, 1, 1, 49]
    assert extra_points(7, 100) == 0


def test_upgrade_at_once_keep_through_grace_then_move_down() -> None:
    policy = validate_tier_policy(LADDER, window_months=12, grace_days=30)
    gold = evaluate(policy, None, 150, T0)
    assert (gold.tier, gold.since) == ("SILVER", T0) and gold.valid_until == dt.datetime(2026, 3, 31, 12,
                                                                                          tzinfo=dt.UTC)
    later = T0 + dt.timedelta(days=380)  # past the review date, inside the grace days
    assert evaluate(policy, gold, 20, later).tier == "SILVER"
    assert evaluate(policy, gold, 20, gold.valid_until + dt.timedelta(days=30)).tier == "BASIC"
    # re-qualifying moves the review date on
    assert evaluate(policy, gold, 120, later).valid_until > gold.valid_until


# --- a review equals a brute-force recomputation -------------------------------------------------

def brute_months(now: dt.datetime, months: int) -> dt.datetime:
    """``now`` moved by ``months`` one month at a time, the day clamped by trial."""
    year, month = now.year, now.month
    for _ in range(abs(months)):
        if months < 0:
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        else:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    day = now.day
    while True:
        try:
            return now.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def brute_window_start(policy: TierPolicy, now: dt.datetime) -> dt.datetime:
    if policy.window == "CALENDAR_YEAR":
        return dt.datetime(now.year, 1, 1, tzinfo=dt.UTC)
    return brute_months(now, -policy.window_months)


def brute_force(policy: TierPolicy, earns: list[tuple[dt.datetime, int, dt.datetime | None]],
                times: list[dt.datetime]) -> list[tuple[str, int]]:
    """The tier after each review, recomputed from the raw earns with no shared code but the policy's ladder."""
    tier: str | None = None
    until = grace_end = None
    out = []
    for now in times:
        start = brute_window_start(policy, now)
        points = sum(p for at, p, gone in earns if start <= at <= now and (gone is None or gone > now))
        best = [t.name for t in policy.tiers if points >= t.threshold_points][-1]
        names = [t.name for t in policy.tiers]
        if tier is None or names.index(best) >= names.index(tier):
            until = (dt.datetime(now.year + 2, 1, 1, tzinfo=dt.UTC) if policy.window == "CALENDAR_YEAR" else
                     brute_months(now, policy.window_months))
            tier = best
        else:
            assert until is not None
            grace_end = until + dt.timedelta(days=policy.grace_days)
            if now >= grace_end:
                tier = best
                until = (dt.datetime(now.year + 2, 1, 1, tzinfo=dt.UTC) if policy.window == "CALENDAR_YEAR" else
                         brute_months(now, policy.window_months))
        out.append((tier, points))
    return out


class World:
    """One SQLite database for every example (each example has a member of its own)."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="coalition-tiers-"))
        self.loop = asyncio.new_event_loop()
        self.settings = load_settings({"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{self.tmp / 't.db'}",
                                       "COALITION_SECRET_KEY": "test-secret-key"})
        self.db = Database(self.settings.database_url, pool_size=2)
        self.keys = NetworkKeys.from_settings(self.settings)
        self.members = 0
        self.loop.run_until_complete(self._setup())

    async def _setup(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        self.merchant_id = (await onboard_merchant(self.db, name="M", earn_rate_points_per_unit=1)).merchant.id

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.db.dispose())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def reviews(self, policy: TierPolicy, earns: list[tuple[dt.datetime, int, dt.datetime | None]],
                      times: list[dt.datetime]) -> list[tuple[str, int]]:
        self.members += 1
        member_id = (await enroll_member(self.db, self.keys, merchant_id=self.merchant_id,
                                         idempotency_key=f"m{self.members}")).member.id
        async with self.db.transaction() as conn:
            await conn.execute(insert(TierPolicyVersion).values(
                tiers=policy.tiers_json(), window=policy.window, window_months=policy.window_months,
                grace_days=policy.grace_days, bonus_funder="MERCHANT", created_at=T0))
            for at, points, gone in earns:
                earn_id = (await conn.execute(insert(Entry).values(
                    kind=EntryKind.EARN, member_id=member_id, merchant_id=self.merchant_id, points=points,
                    created_at=at).returning(Entry.id))).scalar_one()
                if gone is not None:
                    await conn.execute(insert(Entry).values(kind=EntryKind.REVERSAL, member_id=member_id,
                                                            merchant_id=self.merchant_id, points=-points,
                                                            reverses_id=earn_id, created_at=gone))
        out = []
        for now in times:
            await review_tiers(self.db, now=now, member_ids=[member_id])
            async with self.db.read() as conn:
                row = (await conn.execute(select(MemberTier).where(MemberTier.member_id == member_id))).one()
            out.append((row.tier, row.qualifying_points))
        return out


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


@st.composite
def scenarios(draw: Any) -> tuple[TierPolicy, list[Any], list[dt.datetime]]:
    count = draw(st.integers(1, 4))
    steps = draw(st.lists(st.integers(1, 400), min_size=count - 1, max_size=count - 1))
    thresholds = [0]
    for step in steps:
        thresholds.append(thresholds[-1] + step)
    policy = TierPolicy(tiers=tuple(Tier(f"T{i}", t) for i, t in enumerate(thresholds)),
                        window=draw(st.sampled_from(["ROLLING", "CALENDAR_YEAR"])),
                        window_months=draw(st.integers(1, 13)), grace_days=draw(st.integers(0, 60)))
    day = st.integers(0, 900).map(lambda d: T0 + dt.timedelta(days=d, hours=d % 7))
    earns = draw(st.lists(st.tuples(day, st.integers(1, 300), st.none() | day), max_size=12))
    earns = [(at, p, gone if gone is None or gone > at else None) for at, p, gone in earns]
    times = sorted(draw(st.lists(day, min_size=1, max_size=6, unique=True)))
    return policy, earns, times


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_a_review_equals_a_brute_force_recomputation(world: World, scenario: Any) -> None:
    policy, earns, times = scenario
    assert world.loop.run_until_complete(world.reviews(policy, earns, times)) == brute_force(policy, earns, times)
