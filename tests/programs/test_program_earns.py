"""Tiers and campaigns on earnPoints: who gets which points, who funds them, and the ledger's invariants.

Every test here runs on SQLite and (with COALITION_TEST_DATABASE_URL) on PostgreSQL, where the
one-statement earn adds the programs' points itself; the invariants are checked after each.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from program_network import Shops, shops
from sqlalchemy import func, select

from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Account, Entry, EntryKind, Lot, Posting
from coalition.programs.tier_models import EarnBonus
from coalition.programs.tier_review import review_tiers, set_tier_policy

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
TIERS = [{"name": "BASIC", "threshold_points": 0, "multiplier_percent": 100},
         {"name": "SILVER", "threshold_points": 50, "multiplier_percent": 150}]


@pytest.fixture
async def net(db: Any, settings: Any, keys: Any, clock: Any) -> AsyncIterator[Shops]:
    yield await shops(db, settings, keys, clock, members=40)
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


async def bonus_rows(db: Any) -> dict[int, Any]:
    async with db.read() as conn:
        return {row.entry_id: row for row in await conn.execute(select(EarnBonus))}


async def test_treated_members_get_the_campaign_and_the_control_group_does_not(net: Shops, db: Any) -> None:
    # given a campaign doubling A's points for every member of A, half held out
    campaign = await net.campaign()
    treated = await net.treated(campaign.id)
    assert len(treated) == 40 and 5 < sum(treated.values()) < 35
    # when each member buys for 10.00 at A (10 base points) and at B
    results = {m.id: await net.earn(m) for m in net.members}
    at_b = {m.id: await net.earn(m, shop=net.b) for m in net.members}
    # then treated members got 20 points at A, held-out ones 10, and nobody got more at B
    for member_id, result in results.items():
        assert result.entry.points == (20 if treated[member_id] else 10), member_id
        assert at_b[member_id].entry.points == 10
    rows = await bonus_rows(db)
    assert {r.member_id for r in rows.values()} == {m for m, t in treated.items() if t}
    assert all((r.base_points, r.campaign_points, r.tier_points) == (10, 10, 0) for r in rows.values())
    # and A issued (funds) every campaign point: its ISSUED postings are the entries' points
    async with db.read() as conn:
        issued_by_a = -(await conn.execute(select(func.sum(Posting.points)).where(
            Posting.account == Account.ISSUED, Posting.account_id == net.a.id))).scalar_one()
    assert issued_by_a == sum(r.entry.points for r in results.values())


async def test_a_bonus_campaign_adds_points_only_while_it_runs(net: Shops, clock: Any) -> None:
    campaign = await net.campaign(kind="BONUS", multiplier_percent=None, bonus_points=25, control_percent=0)
    member = net.members[0]
    assert (await net.treated(campaign.id))[member.id]
    assert (await net.earn(member)).entry.points == 35
    clock.advance(days=8)  # the campaign has ended
    assert (await net.earn(member)).entry.points == 10


async def test_reversing_an_earn_takes_its_campaign_points_back(net: Shops) -> None:
    campaign = await net.campaign(control_percent=0)
    member = net.members[0]
    assert (await net.treated(campaign.id))[member.id]
    earned = await net.earn(member)
    assert earned.entry.points == 20
    reversed_ = await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earned.entry.id,
                                         idempotency_key="refund")
    assert reversed_.entry.points == -20 and reversed_.member.balance == 0


async def test_a_purchase_too_small_for_a_point_gets_no_bonus(net: Shops) -> None:
    await net.campaign(kind="BONUS", multiplier_percent=None, bonus_points=25, control_percent=0)
    with pytest.raises(Exception) as refused:
        await net.earn(net.members[0], amount_minor=50)
    assert getattr(refused.value, "code", None) == "PURCHASE_TOO_SMALL"


async def test_the_tier_multiplier_is_paid_by_the_merchant_or_the_network_as_policy_says(
        net: Shops, db: Any, clock: Any) -> None:
    member = net.members[0]
    await net.earn(member, amount_minor=6000)  # 60 qualifying points
    # reviews every member: SILVER (150 %)
    await set_tier_policy(db, idempotency_key="policy-1", tiers=TIERS, now=clock.now)
    # merchant-funded: one entry of 15 points, all issued by A
    assert (await net.earn(member)).entry.points == 15
    # network-funded: the earn keeps its 10 points; the network issues 5 more as a BONUS
    await set_tier_policy(db, idempotency_key="policy-2", tiers=TIERS, bonus_funder="NETWORK", now=clock.now)
    earned = await net.earn(member)
    assert earned.entry.points == 10 and earned.member.balance == 60 + 15 + 15
    bonus = [e for e in await net.entries(member.id) if e.kind == EntryKind.BONUS]
    assert [(b.points, b.merchant_id, b.idempotency_key) for b in bonus] == [(5, None, f"tier:{earned.entry.id}")]
    async with db.read() as conn:
        issuer = (await conn.execute(select(Lot.issuer_merchant_id).where(Lot.entry_id == bonus[0].id))).scalar_one()
    assert issuer is None
    row = (await bonus_rows(db))[earned.entry.id]
    assert (row.tier_points, row.tier_entry_id) == (5, bonus[0].id)


async def test_a_policy_change_re_evaluates_without_rewriting_history(net: Shops, db: Any, clock: Any) -> None:
    member = net.members[0]
    await net.earn(member, amount_minor=6000)
    await set_tier_policy(db, idempotency_key="policy-3", tiers=TIERS, now=clock.now)
    before = [tuple(e) for e in await net.entries(member.id)]
    # a richer SILVER applies to the next earn at once; the entries already written stay as they were
    await set_tier_policy(db, idempotency_key="policy-4", tiers=[TIERS[0], {**TIERS[1], "multiplier_percent": 200}],
                          now=clock.now)
    assert (await net.earn(member)).entry.points == 20
    assert [tuple(e) for e in await net.entries(member.id)][:len(before)] == before
    # a higher threshold: SILVER is kept until its review date and the grace days after it, then lost
    await set_tier_policy(db, idempotency_key="policy-5", tiers=[TIERS[0], {**TIERS[1], "threshold_points": 1000}],
                          grace_days=30,
                          now=clock.now)
    assert (await net.earn(member)).entry.points == 15
    clock.advance(days=365 + 29)  # the review date is a year on; 29 of the 30 grace days
    await review_tiers(db, now=clock.now)
    assert (await net.earn(member)).entry.points == 15  # in the grace period
    clock.advance(days=2)
    await review_tiers(db, now=clock.now)
    assert (await net.earn(member)).entry.points == 10


async def test_many_concurrent_earns_during_a_campaign_each_get_their_points(net: Shops, db: Any) -> None:
    campaign = await net.campaign()
    treated = await net.treated(campaign.id)
    jobs = [(m, i) for m in net.members for i in range(3)]
    results = await asyncio.gather(*(net.earn(m, key=f"c-{m.id}-{i}") for m, i in jobs))
    for (member, _), result in zip(jobs, results, strict=True):
        assert result.entry.points == (20 if treated[member.id] else 10)
    # retries with the same keys, concurrently: the same transactions, nothing new
    again = await asyncio.gather(*(net.earn(m, key=f"c-{m.id}-{i}") for m, i in jobs))
    assert [r.entry.id for r in again] == [r.entry.id for r in results]
    async with db.read() as conn:
        earns = (await conn.execute(select(func.count()).select_from(Entry).where(Entry.kind == EntryKind.EARN))
                 ).scalar_one()
    assert earns == len(jobs)
    assert len(await bonus_rows(db)) == 3 * sum(treated.values())


@pytest.mark.skipif(not PG_URL, reason="the fast path is PostgreSQL's: set COALITION_TEST_DATABASE_URL")
async def test_the_one_statement_earn_adds_campaign_and_tier_points(net: Shops, db: Any, clock: Any) -> None:
    member = net.members[0]
    await net.earn(member, amount_minor=6000)
    await set_tier_policy(db, idempotency_key="policy-6", tiers=TIERS, now=clock.now)
    campaign = await net.campaign(control_percent=0)
    assert (await net.treated(campaign.id))[member.id]
    terms = await net.ledger.program_terms(net.a.id, clock.now)
    assert terms.campaigns and terms.tiers and not terms.network_tiers
    done = await net.ledger.fast.earn(
        merchant_id=net.a.id, loyalty_id=member.loyalty_id, amount_minor=1000, minor_per_unit=100, reference=None,
        idempotency_key="fast", request_hash="h", now=clock.now, expires_at=net.ledger.lot_expiry(clock.now),
        campaigns=True, tiers=True, base_tier_pct=100)
    assert done is not None, "the one-statement earn handed a campaign earn to the multi-statement path"
    entry_id, points, after = done
    assert points == 10 + 5 + 10 and after.balance == 60 + 25
    row = (await bonus_rows(db))[entry_id]
    assert (row.base_points, row.tier_points, row.campaign_points) == (10, 5, 10)


async def test_a_segment_campaign_reaches_the_members_the_analysis_put_in_it(net: Shops, db: Any, settings: Any,
                                                                            clock: Any) -> None:
    from coalition.network.jobs import run_analysis
    from coalition.network.loyalty import LoyaltyType
    from coalition.network.store import InsightStore

    for i, member in enumerate(net.members):
        for _ in range(1 + i % 5):
            await net.earn(member, amount_minor=500 + 700 * (i % 7))
        clock.advance(hours=6)
    await run_analysis(db, settings, now=clock.now)
    columns = await InsightStore(db).rfm_columns(net.a.id)
    assert columns is not None
    by_type: dict[str, set[int]] = {}
    for member_id, kind in zip(columns["member_ids"].tolist(), columns["type"].tolist(), strict=True):
        by_type.setdefault(LoyaltyType(kind).name, set()).add(int(member_id))
    segment, members = max(by_type.items(), key=lambda item: len(item[1]))
    campaign = await net.campaign(segment=segment, control_percent=0)
    assert set(await net.treated(campaign.id)) == members


@pytest.fixture(params=("fast", "general") if PG_URL else ("general",))
async def path_net(request: pytest.FixtureRequest, net: Shops, db: Any) -> Shops:
    """``net`` with plain earns on one path: PostgreSQL's one statement (``fast``) or the multi-statement one."""
    net.ledger.fast_path = request.param == "fast" and not db.is_sqlite
    return net


async def tier_bonus_reversal(net: Shops, earned: Any) -> tuple[Any, Any]:
    """The earn's network tier bonus and the REVERSAL entry of that bonus (None when it has none)."""
    entries = await net.entries(earned.entry.member_id)
    bonus = next(e for e in entries if e.kind == EntryKind.BONUS and e.idempotency_key == f"tier:{earned.entry.id}")
    undone = [e for e in entries if e.kind == EntryKind.REVERSAL and e.reverses_id == bonus.id]
    return bonus, (undone[0] if undone else None)


async def issued_by(db: Any, merchant_id: int | None) -> int:
    async with db.read() as conn:
        holder = Posting.account_id.is_(None) if merchant_id is None else Posting.account_id == merchant_id
        return -int((await conn.execute(select(func.coalesce(func.sum(Posting.points), 0)).where(
            Posting.account == Account.ISSUED, holder))).scalar_one())


@pytest.mark.parametrize("funder", ["MERCHANT", "NETWORK"])
async def test_reversing_an_earn_reverses_its_tier_bonus_whoever_funds_it(
        path_net: Shops, db: Any, clock: Any, funder: str) -> None:
    net = path_net
    member = net.members[0]
    await net.earn(member, amount_minor=6000)  # 60 qualifying points: SILVER (150 %)
    await set_tier_policy(db, idempotency_key="policy-7", tiers=TIERS, bonus_funder=funder, now=clock.now)
    network_before, a_before = await issued_by(db, None), await issued_by(db, net.a.id)
    earned = await net.earn(member)
    assert earned.member.balance == 75
    # when A refunds the purchase
    undone = await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earned.entry.id, idempotency_key="refund")
    # then the member has what it had before, and neither A nor the network has issued anything for it
    assert undone.member.balance == 60 and undone.member.owed == 0
    assert (await issued_by(db, None), await issued_by(db, net.a.id)) == (network_before, a_before)
    if funder == "NETWORK":
        bonus, reversal = await tier_bonus_reversal(net, earned)
        assert (bonus.points, reversal.points, reversal.merchant_id) == (5, -5, None)
    # a retry replays the reversal and reverses nothing more
    again = await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earned.entry.id, idempotency_key="refund")
    assert again.entry.id == undone.entry.id
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(Entry).where(Entry.kind == EntryKind.REVERSAL)) == (
            2 if funder == "NETWORK" else 1)


async def test_a_spent_network_tier_bonus_becomes_debt_when_its_earn_is_reversed(path_net: Shops, db: Any,
                                                                                 clock: Any) -> None:
    net = path_net
    member = net.members[0]
    await net.earn(member, amount_minor=6000)
    await set_tier_policy(db, idempotency_key="policy-8", tiers=TIERS, bonus_funder="NETWORK", now=clock.now)
    earned = await net.earn(member)  # 10 points of A's, 5 of the network's
    await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=member.loyalty_id, points=75, idempotency_key="spend")
    undone = await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earned.entry.id, idempotency_key="refund")
    # everything was spent: the member owes the earn's 10 points and the bonus's 5
    assert (undone.member.balance, undone.member.owed) == (0, 15)
    _, reversal = await tier_bonus_reversal(net, earned)
    assert reversal.points == -5
    # the next earn repays the debt first (no tier bonus while owing: SILVER's 5 go to the debt too)
    repaid = await net.earn(member, amount_minor=2000)
    assert (repaid.member.balance, repaid.member.owed) == (15, 0)


async def test_an_earn_whose_network_tier_bonus_is_held_is_not_reversed(path_net: Shops, db: Any,
                                                                        clock: Any) -> None:
    net = path_net
    member = net.members[0]
    await set_tier_policy(db, idempotency_key="policy-9", tiers=[{**TIERS[0], "multiplier_percent": 200}],
                          bonus_funder="NETWORK", now=clock.now)
    earned = await net.earn(member)  # 10 of A's, 10 of the network's: the member's only lots
    # A's lot is spent (the first in FIFO order), the bonus's is held by an open authorization
    await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=member.loyalty_id, points=10, idempotency_key="spend")
    await net.ledger.authorize(merchant_id=net.b.id, loyalty_id=member.loyalty_id, points=10,
                               idempotency_key="hold")
    before = await net.entries(member.id)
    with pytest.raises(Exception) as refused:
        await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earned.entry.id, idempotency_key="refund")
    assert getattr(refused.value, "code", None) == "POINTS_HELD"
    assert await net.entries(member.id) == before
