"""Status tiers: the network's tier policy and how a member's tier follows from it.

A tier is earned by points EARNED in a qualifying window (not the balance): the sum of the
member's EARN entries created in the window, less those reversed since. The window is the
last ``window_months`` months (ROLLING) or the calendar year so far (CALENDAR_YEAR, UTC).

The rules (:func:`evaluate`, pure; ``tests/programs/test_tiers.py`` checks them against a
brute-force recomputation):

- the qualified tier is the highest whose threshold the qualifying points reach;
- qualifying for the current tier or a higher one (re)starts it: an upgrade at once, and the
  tier is valid until the next review (ROLLING: ``window_months`` after now; CALENDAR_YEAR:
  the end of the next calendar year, so status earned in a year holds through the next);
- below the current tier's threshold the tier is kept until ``valid_until`` and then for
  ``grace_days`` more; after that the member moves down to the qualified tier.

The kept state (tier, since, valid until) lives in ``member_tiers``; a review writes it
(:mod:`coalition.programs.tier_review`). Changing the policy re-evaluates members from their
entries and that state: no entry is rewritten.

The multiplier: an earn's base points ``P`` (the merchant's rate, rounded down) get
``P * (multiplier_percent - 100) // 100`` more (integer arithmetic, i.e. ``Decimal`` rounded
down: the network never issues a point nobody funds), issued by the earning merchant or the
network as ``bonus_funder`` says.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from coalition.programs.errors import InvalidTierPolicy

WINDOWS = ("ROLLING", "CALENDAR_YEAR")
FUNDERS = ("MERCHANT", "NETWORK")
MAX_TIERS = 10
MAX_THRESHOLD = 2**31 - 1
MAX_MULTIPLIER_PERCENT = 1000
MAX_GRACE_DAYS = 366
MAX_WINDOW_MONTHS = 36
_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,31}")


@dataclass(frozen=True)
class Tier:
    name: str
    threshold_points: int
    multiplier_percent: int = 100


@dataclass(frozen=True)
class TierPolicy:
    """One version of the tier policy; ``id`` None for the default (nothing stored)."""

    tiers: tuple[Tier, ...]
    window: str = "ROLLING"
    window_months: int = 12
    grace_days: int = 90
    bonus_funder: str = "MERCHANT"
    id: int | None = None
    created_at: dt.datetime | None = None

    def rank(self, name: str) -> int:
        """The tier's index, lowest 0; -1 for a name this policy does not have."""
        return next((i for i, t in enumerate(self.tiers) if t.name == name), -1)

    def qualified(self, points: int) -> Tier:
        return [t for t in self.tiers if points >= t.threshold_points][-1]

    def above(self, name: str) -> Tier | None:
        i = self.rank(name)
        return self.tiers[i + 1] if 0 <= i < len(self.tiers) - 1 else None

    @property
    def has_multipliers(self) -> bool:
        return any(t.multiplier_percent != 100 for t in self.tiers)

    def tiers_json(self) -> str:
        return json.dumps([{"name": t.name, "thresholdPoints": t.threshold_points,
                            "multiplierPercent": t.multiplier_percent} for t in self.tiers])


# The member-facing ladder the network had before tiers were configurable (lifetime thresholds).
DEFAULT_POLICY = TierPolicy(tiers=(Tier("BASIC", 0), Tier("SILVER", 1_000), Tier("GOLD", 5_000),
                                   Tier("PLATINUM", 20_000)))


def _int(value: Any, field: str, code: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidTierPolicy(f"{field} must be a whole number from {low} to {high}, got {value!r}",
                                code=code, field=field)
    return value


def validate_tier_policy(tiers: Any, *, window: Any = None, window_months: Any = None, grace_days: Any = None,
                         bonus_funder: Any = None) -> TierPolicy:
    """A checked policy, or :class:`InvalidTierPolicy` naming the first bad field. A value left out (None)
    takes :class:`TierPolicy`'s default (a tier's multiplier: 100)."""
    defaults = TierPolicy(tiers=())
    window = defaults.window if window is None else window
    window_months = defaults.window_months if window_months is None else window_months
    grace_days = defaults.grace_days if grace_days is None else grace_days
    bonus_funder = defaults.bonus_funder if bonus_funder is None else bonus_funder
    if not isinstance(tiers, list | tuple) or not 1 <= len(tiers) <= MAX_TIERS:
        raise InvalidTierPolicy(f"tiers must list 1 to {MAX_TIERS} tiers, lowest first", code="INVALID_TIERS",
                                field="tiers")
    checked: list[Tier] = []
    for tier in tiers:
        name = tier.name if isinstance(tier, Tier) else tier["name"]
        threshold = tier.threshold_points if isinstance(tier, Tier) else tier["threshold_points"]
        multiplier = tier.multiplier_percent if isinstance(tier, Tier) else tier.get("multiplier_percent")
        multiplier = 100 if multiplier is None else multiplier
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidTierPolicy(f"a tier name is 1 to 32 capital letters, digits or _ starting with a letter, "
                                    f"e.g. GOLD; got {str(name)[:40]!r}", code="INVALID_TIER_NAME", field="tiers")
        if any(t.name == name for t in checked):
            raise InvalidTierPolicy(f"tier {name} is listed twice", code="INVALID_TIER_NAME", field="tiers")
        threshold = _int(threshold, "thresholdPoints", "INVALID_THRESHOLD", 0, MAX_THRESHOLD)
        if not checked and threshold != 0:
            raise InvalidTierPolicy("the first (lowest) tier's thresholdPoints must be 0: every member has a tier",
                                    code="INVALID_THRESHOLD", field="tiers")
        if checked and threshold <= checked[-1].threshold_points:
            raise InvalidTierPolicy(f"tier {name}: thresholds must rise from one tier to the next "
                                    f"({threshold} after {checked[-1].threshold_points})",
                                    code="INVALID_THRESHOLD", field="tiers")
        multiplier = _int(multiplier, "multiplierPercent", "INVALID_MULTIPLIER", 100, MAX_MULTIPLIER_PERCENT)
        checked.append(Tier(name, threshold, multiplier))
    if window not in WINDOWS:
        raise InvalidTierPolicy(f"window must be one of {', '.join(WINDOWS)}; got {str(window)[:40]!r}",
                                code="INVALID_WINDOW", field="window")
    months = _int(window_months, "windowMonths", "INVALID_WINDOW", 1, MAX_WINDOW_MONTHS)
    grace = _int(grace_days, "graceDays", "INVALID_GRACE_DAYS", 0, MAX_GRACE_DAYS)
    if bonus_funder not in FUNDERS:
        raise InvalidTierPolicy(f"bonusFunder must be one of {', '.join(FUNDERS)}; got {str(bonus_funder)[:40]!r}",
                                code="INVALID_BONUS_FUNDER", field="bonusFunder")
    return TierPolicy(tiers=tuple(checked), window=window, window_months=months, grace_days=grace,
                      bonus_funder=bonus_funder)


def policy_from_row(row: Any) -> TierPolicy:
    tiers = tuple(Tier(t["name"], int(t["thresholdPoints"]), int(t["multiplierPercent"]))
                  for t in json.loads(row.tiers))
    return TierPolicy(tiers=tiers, window=row.window, window_months=row.window_months, grace_days=row.grace_days,
                      bonus_funder=row.bonus_funder, id=row.id, created_at=row.created_at)


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """``when`` moved by ``months`` (negative: back), the day clamped to the target month's length."""
    index = when.year * 12 + when.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    days = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31,
            30, 31, 30, 31][month - 1]
    return when.replace(year=year, month=month, day=min(when.day, days))


def window_start(policy: TierPolicy, now: dt.datetime) -> dt.datetime:
    """Earns created at or after this (and at or before ``now``) qualify."""
    now = now.astimezone(dt.UTC)
    if policy.window == "CALENDAR_YEAR":
        return dt.datetime(now.year, 1, 1, tzinfo=dt.UTC)
    return add_months(now, -policy.window_months)


def next_review(policy: TierPolicy, now: dt.datetime) -> dt.datetime:
    now = now.astimezone(dt.UTC)
    if policy.window == "CALENDAR_YEAR":
        return dt.datetime(now.year + 2, 1, 1, tzinfo=dt.UTC)
    return add_months(now, policy.window_months)


@dataclass(frozen=True)
class TierState:
    """What a review keeps of a member's tier."""

    tier: str
    qualifying_points: int
    since: dt.datetime
    valid_until: dt.datetime


def evaluate(policy: TierPolicy, previous: TierState | None, qualifying_points: int, now: dt.datetime) -> TierState:
    """The member's tier state at ``now``, from the kept state and the points earned in the window."""
    qualified = policy.qualified(qualifying_points)
    rank = policy.rank(qualified.name)
    current = -1 if previous is None else policy.rank(previous.tier)
    if previous is None or current < 0 or rank >= current:
        since = previous.since if previous is not None and rank == current else now
        return TierState(qualified.name, qualifying_points, since, next_review(policy, now))
    if now < previous.valid_until + dt.timedelta(days=policy.grace_days):
        return TierState(previous.tier, qualifying_points, previous.since, previous.valid_until)
    return TierState(qualified.name, qualifying_points, now, next_review(policy, now))


def extra_points(base_points: int, multiplier_percent: int) -> int:
    """Points a ``multiplier_percent`` adds to ``base_points``: rounded down (Decimal ROUND_FLOOR)."""
    return base_points * (multiplier_percent - 100) // 100
