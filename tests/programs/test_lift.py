"""The lift and its p-value on planted data: a known effect is found, no effect is not claimed."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from program_network import shops

from coalition.programs.campaign_results import campaign_result
from coalition.programs.lift import lift


def spends(rng: random.Random, n: int, scale: float) -> list[int]:
    """Skewed spend per member in minor units: many zeros, a long tail (as shops see it)."""
    return [0 if rng.random() < 0.3 else int(rng.lognormvariate(7.5, 0.6) * scale) for _ in range(n)]


def test_a_planted_effect_is_found() -> None:
    rng = random.Random(15)
    found = lift(spends(rng, 900, 1.25), spends(rng, 400, 1.0), min_group=30)
    assert found.percent is not None and found.p_value is not None
    assert 15 <= found.percent <= 35  # planted: +25 %
    assert found.p_value < 0.001


def test_no_effect_is_rarely_called_significant() -> None:
    # 200 campaigns with no effect at all: about 5 % of p-values fall below 0.05, as a valid test's must
    rng = random.Random(7)
    p_values = [lift(spends(rng, 300, 1.0), spends(rng, 100, 1.0), min_group=30).p_value for _ in range(200)]
    assert all(p is not None for p in p_values)
    false_alarms = sum(p < 0.05 for p in p_values if p is not None)
    assert false_alarms <= 20, false_alarms  # 10 expected; 20 is beyond 3 standard deviations


def test_no_lift_below_the_minimum_group_size_or_without_a_base() -> None:
    assert lift([100] * 29, [50] * 40, min_group=30).percent is None
    assert lift([100] * 40, [50] * 29, min_group=30).p_value is None
    zero_base = lift([100, 0] * 20, [0] * 40, min_group=30)
    assert zero_base.percent is None and zero_base.p_value is not None
    flat = lift([5] * 40, [5] * 40, min_group=30)
    assert flat.percent == 0 and flat.p_value is None  # neither group varies: no test to run


@pytest.mark.parametrize("effect", [1.0, 1.5])
async def test_the_campaign_result_measures_a_planted_effect_from_the_ledger(
        db: Any, settings: Any, keys: Any, clock: Any, effect: float) -> None:
    # given 240 members of shop A and a campaign holding out half of them
    net = await shops(db, settings, keys, clock, members=240)
    campaign = await net.campaign(control_percent=50, multiplier_percent=150)
    treated = await net.treated(campaign.id)
    rng = random.Random(int(effect * 10))
    # when treated members spend `effect` times as much at A (and visit B more), control as before
    for member in net.members:
        boost = effect if treated[member.id] else 1.0
        for _ in range(2):
            await net.earn(member, amount_minor=int(rng.randint(1000, 3000) * boost))
        if treated[member.id] and effect > 1 and rng.random() < 0.5:
            await net.earn(member, shop=net.b)
    clock.advance(days=8)  # after the campaign
    await net.earn(net.members[0])  # outside the period: not counted
    result = await campaign_result(db, campaign, clock.now, min_group=30)
    # then the lift is the planted effect, and significant only when there is one
    assert result.treated_members + result.control_members == 240
    assert result.treated_visits == 2 * result.treated_members
    assert result.spend.percent is not None and result.spend.p_value is not None
    if effect == 1.0:
        assert abs(result.spend.percent) < 10 and result.spend.p_value > 0.01
        assert result.partner_visits.percent is None  # nobody visited a partner: no base
    else:
        assert 40 <= result.spend.percent <= 60 and result.spend.p_value < 1e-6
        assert result.treated_partner_visits > 0 and result.control_partner_visits == 0
    assert result.bonus_points > 0
    assert campaign.ends_at < clock.now - dt.timedelta(days=0)
