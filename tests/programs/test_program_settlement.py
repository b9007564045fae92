"""Settlement of program costs: a voucher's points are honored by the reward's merchant and charged to their
issuers; a quest bonus is issued by its funders; an expired voucher's refund is a reversal; zero-sum holds."""

from __future__ import annotations

import datetime as dt
from typing import Any

from coalition.programs import quests, vouchers
from coalition.programs.hooks import after_earn
from coalition.programs.rewards import create_reward
from coalition.settlement.service import batch_lines, batch_positions, run_settlement


async def settle(shops: Any, keys: Any, key: str) -> Any:
    shops.clock.advance(hours=1)
    run = await run_settlement(shops.ledger.db, shops.settings, keys, period_end=shops.now, idempotency_key=key,
                               now=shops.now)
    shops.clock.advance(hours=1)
    positions = {p.merchant_id: p for p in await batch_positions(shops.ledger.db, run.batch.id)}
    assert sum(p.net_minor for p in positions.values()) + run.batch.network_income_minor == 0  # zero-sum
    return run, positions


async def test_program_costs_are_settled_to_their_funders(shops: Any, keys: Any) -> None:
    # given 150 points issued by A, a reward of B's claimed for 100 of them, and a quest the shops fund
    member = await shops.member()
    await shops.earn(member, 150, shops.a)
    rw = await create_reward(shops.ledger.db, merchant_id=shops.b.id, name="Book", points_cost=100,
                             voucher_valid_days=3, idempotency_key="rw", now=shops.now)
    await vouchers.claim_reward(shops.ledger, reward_id=rw.id, loyalty_id=member.loyalty_id,
                                     merchant_id=shops.b.id, idempotency_key="c", now=shops.now)
    await quests.create_quest(shops.ledger.db, name="Tour", merchant_ids=[shops.a.id, shops.b.id, shops.c.id],
                              visits_required=3, window_days=30, bonus_points=100, funding="PARTNERS",
                              starts_at=shops.now, ends_at=shops.now + dt.timedelta(days=30), idempotency_key="q",
                              now=shops.now)
    for shop in (shops.a, shops.b, shops.c):
        await after_earn(shops.ledger, await shops.earn(member, 10, shop))
    # when the period is settled
    run, positions = await settle(shops, keys, "s1")
    # then B honored the voucher's 100 points, issued by A; each shop issued its share of the bonus
    assert positions[shops.b.id].points_honored == 100
    assert positions[shops.a.id].points_issued == 150 + 10 + 34
    assert (positions[shops.b.id].points_issued, positions[shops.c.id].points_issued) == (10 + 33, 10 + 33)
    lines = await batch_lines(shops.ledger.db, run.batch.id)
    honored = [(ln.issuer_merchant_id, ln.redeemer_merchant_id, ln.points) for ln in lines
               if ln.redeemer_merchant_id == shops.b.id and ln.issuer_merchant_id == shops.a.id]
    assert honored == [(shops.a.id, shops.b.id, 100)]
    # when the voucher expires unused, its refund is settled in the next batch as a reversal
    shops.clock.advance(days=4)
    assert await vouchers.expire_vouchers(shops.ledger, now=shops.now) == 1
    _, positions2 = await settle(shops, keys, "s2")
    b1, b2 = positions[shops.b.id], positions2[shops.b.id]
    assert (b2.points_honored, b2.points_reversed) == (0, 100)
    assert b2.net_minor < 0 < b1.net_minor  # B gives back what it was reimbursed for the voucher
