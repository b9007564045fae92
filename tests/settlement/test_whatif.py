"""What-if: the worked example's batch 1 priced under other policies, by hand, with nothing written.

Activity (test_worked_example.py): A issues 100, B 50; C honors 30 of A's, B honors 70 of
A's and 10 of its own, A honors 5 of B's. The stored policy is the default: ISSUANCE,
point value 1, reimbursement rate 0.90 -> positions A -96, B +22, C +27, income 47.

At rate 0.80 (ISSUANCE): reimbursements C 30 x 0.8 = 24, B 80 x 0.8 = 64, A 5 x 0.8 = 4:
  A -100 + 4 = -96 (delta 0), B -50 + 64 = +14 (delta -8), C +24 (delta -3); income 58.
Under REDEMPTION at 0.90 (the worked example): A -96, B +58, C +27; income 11.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from coalition.errors import DomainError
from coalition.ledger.models import Allocation, Entry, Lot, Posting
from coalition.settlement.models import FundingModel, NetworkPolicy, SettlementBatch, SettlementLine
from coalition.settlement.whatif import simulate_settlement

TABLES = (Entry, Posting, Lot, Allocation, SettlementBatch, SettlementLine, NetworkPolicy)


async def worked_example(s: Any) -> None:
    await s.worked_example_activity()
    s.clock.advance(minutes=1)


def nets(s: Any, figures: Any) -> dict[str, int]:
    names = {s.a.id: "A", s.b.id: "B", s.c.id: "C"}
    return {names[m]: f.net_minor for m, f in figures.merchants.items()}


async def test_a_lower_reimbursement_rate_by_hand(shops: Any) -> None:
    s = shops
    await worked_example(s)
    before = await s.row_counts(*TABLES)
    simulation = await simulate_settlement(s.db, s.settings, period_end=s.clock(), now=s.clock(),
                                           reimbursement_rate="0.80")
    assert nets(s, simulation.current) == {"A": -96, "B": 22, "C": 27}
    assert simulation.current.netting.network_income_minor == 47
    assert nets(s, simulation.simulated) == {"A": -96, "B": 14, "C": 24}
    assert simulation.simulated.netting.network_income_minor == 58
    assert {c.merchant_id: c.delta_minor for c in simulation.changes} == {s.a.id: 0, s.b.id: -8, s.c.id: -3}
    assert str(simulation.policy.reimbursement_rate) == "0.8" and simulation.policy.id is None
    # Positions plus network income are exactly zero in both.
    for figures in (simulation.current, simulation.simulated):
        assert sum(figures.netting.positions.values()) + figures.netting.network_income_minor == 0
    assert await s.row_counts(*TABLES) == before


async def test_another_funding_model_for_a_closed_batch(shops: Any) -> None:
    s = shops
    await worked_example(s)
    batch = (await s.settle()).batch
    before = await s.row_counts(*TABLES)
    simulation = await simulate_settlement(s.db, s.settings, batch_id=batch.id, funding_model="REDEMPTION")
    assert simulation.policy.funding_model == FundingModel.REDEMPTION
    assert nets(s, simulation.current) == await named_positions(s, batch.id)
    assert nets(s, simulation.simulated) == {"A": -96, "B": 58, "C": 27}
    assert simulation.simulated.netting.network_income_minor == 11
    assert (simulation.period_start, simulation.period_end) == (batch.period_start, batch.period_end)
    assert await s.row_counts(*TABLES) == before


async def named_positions(s: Any, batch_id: int) -> dict[str, int]:
    names = {s.a.id: "A", s.b.id: "B", s.c.id: "C"}
    return {names[m]: v for m, v in (await s.positions(batch_id)).items()}


async def test_the_next_period_excludes_settled_activity(shops: Any) -> None:
    s = shops
    await worked_example(s)
    await s.settle()
    await s.earn(10, s.c)
    s.clock.advance(minutes=1)
    simulation = await simulate_settlement(s.db, s.settings, period_end=s.clock(), now=s.clock(),
                                           point_value_minor=2)
    assert nets(s, simulation.current) == {"C": -10}
    assert nets(s, simulation.simulated) == {"C": -20}


@pytest.mark.parametrize(("changes", "code"), [
    ({"reimbursement_rate": "1.5"}, "INVALID_REIMBURSEMENT_RATE"),
    ({"reimbursement_rate": "abc"}, "INVALID_REIMBURSEMENT_RATE"),
    ({"funding_model": "BARTER"}, "INVALID_FUNDING_MODEL"),
    ({"point_value_minor": -1}, "INVALID_POINT_VALUE"),
    ({"breakage_share": "-0.1"}, "INVALID_BREAKAGE_SHARE"),
])
async def test_bad_policies_are_refused(shops: Any, changes: dict[str, Any], code: str) -> None:
    s = shops
    await worked_example(s)
    before = await s.row_counts(*TABLES)
    with pytest.raises(DomainError) as info:
        await simulate_settlement(s.db, s.settings, period_end=s.clock(), now=s.clock(), **changes)
    assert info.value.code == code
    assert await s.row_counts(*TABLES) == before


async def test_bad_windows_are_refused(shops: Any) -> None:
    s = shops
    await worked_example(s)
    batch = (await s.settle()).batch
    cases = [
        ({"period_end": s.clock() + dt.timedelta(days=1)}, "PERIOD_END_IN_FUTURE"),
        ({"period_end": batch.period_end}, "PERIOD_END_NOT_AFTER_LAST_BATCH"),
        ({"period_end": dt.datetime(2026, 1, 1)}, "INVALID_PERIOD_END"),
        ({"batch_id": batch.id + 1}, "BATCH_NOT_FOUND"),
        ({}, "INVALID_SIMULATION_WINDOW"),
        ({"batch_id": batch.id, "period_end": s.clock()}, "INVALID_SIMULATION_WINDOW"),
    ]
    for window, code in cases:
        with pytest.raises(DomainError) as info:
            await simulate_settlement(s.db, s.settings, now=s.clock(), **window)
        assert info.value.code == code, window
