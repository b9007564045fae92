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


async def test_a_statement_shows_each_program_cost_on_its_own_line_charged_to_its_funder(
        db: Any, settings: Any, keys: Any, clock: Any) -> None:
    from program_network import shops as program_shops

    from coalition.ledger.invariants import assert_ledger_consistent
    from coalition.programs import purchases
    from coalition.programs.tier_review import set_tier_policy
    from coalition.settlement.models import LineKind, ProgramCost
    from coalition.settlement.service import export_statement
    from coalition.settlement.statements import verify_export

    net = await program_shops(db, settings, keys, clock, members=2)
    member, other = net.members
    ledger = net.ledger

    async def buy(who: Any, shop: Any, amount: int = 1000) -> Any:
        return await purchases.earn(ledger, merchant_id=shop.id, loyalty_id=who.loyalty_id,
                                    purchase_amount_minor=amount, idempotency_key=net.key("buy"))

    await buy(member, net.a, 6000)  # 60 of A's points: SILVER (150 %) under the policy below
    await set_tier_policy(db, tiers=[{"name": "BASIC", "threshold_points": 0},
                                     {"name": "SILVER", "threshold_points": 50, "multiplier_percent": 150}],
                          idempotency_key="merchant-funded", now=clock.now)
    await net.campaign(kind="BONUS", multiplier_percent=None, bonus_points=25, control_percent=0)
    assert (await buy(member, net.a)).entry.points == 10 + 5 + 25  # A funds its tier's 5 and its campaign's 25
    refunded = await buy(other, net.a)  # a purchase refunded in the same period: no program cost stays
    await purchases.reverse(ledger, merchant_id=net.a.id, transaction_id=refunded.entry.id, idempotency_key="r")
    await set_tier_policy(db, tiers=[{"name": "BASIC", "threshold_points": 0},
                                     {"name": "SILVER", "threshold_points": 50, "multiplier_percent": 150}],
                          bonus_funder="NETWORK", idempotency_key="network-funded", now=clock.now)
    await quests.create_quest(db, name="Tour", merchant_ids=[net.a.id, net.b.id], visits_required=2, window_days=30,
                              bonus_points=100, funding="NETWORK", starts_at=clock.now,
                              ends_at=clock.now + dt.timedelta(days=30), idempotency_key="q", now=clock.now)
    await buy(member, net.a)  # 10 + 25 of A's, 5 of the network's (tier)
    await buy(member, net.b)  # 10 of B's, 5 of the network's; the quest's 100 (the network's)
    rw = await create_reward(db, merchant_id=net.b.id, name="Book", points_cost=50, idempotency_key="rw",
                             now=clock.now)
    await vouchers.claim_reward(ledger, reward_id=rw.id, loyalty_id=member.loyalty_id, merchant_id=net.b.id,
                                idempotency_key="claim", now=clock.now)
    clock.advance(hours=1)
    run = await run_settlement(db, settings, keys, period_end=clock.now, idempotency_key="s1", now=clock.now)
    lines = await batch_lines(db, run.batch.id)
    programs = {(ln.kind, ln.issuer_merchant_id, ln.redeemer_merchant_id, ln.program): ln.points
                for ln in lines if ln.program is not None}
    assert programs == {
        (LineKind.ISSUED, net.a.id, None, ProgramCost.CAMPAIGN): 25 + 25,
        (LineKind.ISSUED, net.a.id, None, ProgramCost.TIER): 5,
        (LineKind.ISSUED, None, None, ProgramCost.TIER): 5 + 5,
        (LineKind.ISSUED, None, None, ProgramCost.QUEST): 100,
        (LineKind.HONORED, net.a.id, net.b.id, ProgramCost.VOUCHER): 50,  # the oldest points, A's, honored by B
    }
    # the plain lines hold the rest: A's earns' base points, B's; nothing is counted twice
    issued_by_a = sum(ln.points for ln in lines if ln.kind == LineKind.ISSUED and ln.issuer_merchant_id == net.a.id)
    assert issued_by_a == 60 + 40 + 35
    # zero-sum, and each merchant's signed statement (with its program lines) verifies
    positions = await batch_positions(db, run.batch.id)
    assert sum(p.net_minor for p in positions) + run.batch.network_income_minor == 0
    for position in positions:
        own = await export_statement(db, keys, run.batch.id, position.merchant_id)
        (statement,) = verify_export(own, keys.public_key_b64, merchant_id=position.merchant_id).merchants
        assert statement["figures"]["netMinor"] == position.net_minor
        shown = {(ln["kind"], ln["issuerMerchantId"], ln.get("program")) for ln in statement["lines"]}
        if position.merchant_id == net.a.id:
            assert {("ISSUED", net.a.id, "CAMPAIGN"), ("ISSUED", net.a.id, "TIER"),
                    ("HONORED", net.a.id, "VOUCHER")} <= shown
    async with db.read() as conn:
        await assert_ledger_consistent(conn)
