"""Stored campaign results: the worker's snapshot is the live count at its as_of, kept fresh, final once settled."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

from program_network import Shops, shops
from sqlalchemy import func, select

from coalition.programs.campaign_models import CampaignResultSnapshot
from coalition.programs.campaign_results import campaign_result
from coalition.programs.campaign_snapshots import SETTLE, compute_and_store, latest_result
from coalition.worker import Worker

MIN_GROUP = 5
INTERVAL_S = 300.0


async def planted(db: Any, settings: Any, keys: Any, clock: Any) -> tuple[Shops, Any, list[Any]]:
    """40 members of shop A, half held out; treated members spend more at A, some visit B."""
    net = await shops(db, settings, keys, clock, members=40)
    campaign = await net.campaign(control_percent=50, multiplier_percent=150)
    treated = await net.treated(campaign.id)
    earns = []
    for i, member in enumerate(net.members):
        earns.append(await net.earn(member, amount_minor=1000 + 37 * i + (900 if treated[member.id] else 0)))
        if treated[member.id] and i % 3 == 0:
            await net.earn(member, shop=net.b)
    return net, campaign, earns


def worker(db: Any, settings: Any, keys: Any, clock: Any) -> Worker:
    tuned = dataclasses.replace(settings, campaign_min_group_size=MIN_GROUP, campaign_results_interval_s=INTERVAL_S)
    return Worker(db, tuned, keys, clock=clock, only=["campaigns"])


async def snapshot_rows(db: Any) -> list[Any]:
    async with db.read() as conn:
        return list(await conn.execute(select(CampaignResultSnapshot)))


async def test_the_worker_stores_the_live_result_at_its_as_of_and_readers_use_it_while_fresh(
        db: Any, settings: Any, keys: Any, clock: Any) -> None:
    # given a running campaign with planted spend, and the worker's campaigns job run once
    net, campaign, _ = await planted(db, settings, keys, clock)
    clock.advance(hours=1)
    job = worker(db, settings, keys, clock)
    try:
        assert (await job.tick()).campaign_results == 1
        as_of = clock.now
        # then the stored result is exactly the live count at as_of (lift and p-values included)
        clock.advance(minutes=1)
        await net.earn(net.members[0], amount_minor=99_999)  # after as_of: not in the snapshot
        clock.advance(seconds=1)
        stored = await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)
        live_then = await campaign_result(db, campaign, as_of, MIN_GROUP)
        assert stored.as_of == as_of and not stored.final
        assert stored.result == live_then
        assert stored.result.spend.percent is not None and stored.result.spend.p_value is not None
        assert stored.result != await campaign_result(db, campaign, clock.now, MIN_GROUP)  # the later earn
        # when the worker runs again, the snapshot moves on to the new as_of
        clock.advance(seconds=INTERVAL_S)
        assert (await job.tick()).campaign_results == 1
        again = await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)
        assert again.as_of == clock.now and again.result == await campaign_result(db, campaign, clock.now, MIN_GROUP)
        assert again.result.treated_spend_minor + again.result.control_spend_minor == (
            live_then.treated_spend_minor + live_then.control_spend_minor + 99_999)
        assert len(await snapshot_rows(db)) == 1
    finally:
        await job.aclose()


async def test_without_a_snapshot_or_with_a_stale_one_the_reader_counts_live_and_stores(
        db: Any, settings: Any, keys: Any, clock: Any) -> None:
    net, campaign, _ = await planted(db, settings, keys, clock)
    assert await snapshot_rows(db) == []
    clock.advance(hours=1)
    # no worker: the first read counts live and stores it
    first = await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)
    assert first.result.treated_visits > 0 and first.as_of == clock.now
    assert first.result == await campaign_result(db, campaign, clock.now, MIN_GROUP)
    assert [row.as_of for row in await snapshot_rows(db)] == [clock.now]
    # a read within twice the interval gets the stored one, even after new purchases
    as_of = clock.now
    clock.advance(seconds=2 * INTERVAL_S - 1)
    await net.earn(net.members[1], amount_minor=5000)
    assert (await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)).as_of == as_of
    # older than that (the worker is down): counted again, with the new purchase
    clock.advance(seconds=1)
    stale = await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)
    assert stale.as_of == clock.now
    assert stale.result.treated_spend_minor + stale.result.control_spend_minor == (
        first.result.treated_spend_minor + first.result.control_spend_minor + 5000)
    # another minimum group size (the setting changed) is not served from a snapshot made with the old one
    other = await latest_result(db, campaign, clock.now, 1000, INTERVAL_S)
    assert other.result.spend.percent is None and other.result == await campaign_result(db, campaign, clock.now, 1000)
    # with the job off (interval 0) every read counts
    clock.advance(seconds=1)
    assert (await latest_result(db, campaign, clock.now, MIN_GROUP, 0.0)).as_of == clock.now


async def test_refunds_change_the_result_until_it_settles_then_it_is_final_and_not_recomputed(
        db: Any, settings: Any, keys: Any, clock: Any) -> None:
    net, campaign, earns = await planted(db, settings, keys, clock)
    job = worker(db, settings, keys, clock)
    try:
        # a refund after the campaign's end, within the settle time, changes the stored result
        clock.now = campaign.ends_at + dt.timedelta(days=1)
        await job.tick()
        before = (await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)).result
        await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earns[0].entry.id, idempotency_key="r1")
        clock.advance(seconds=INTERVAL_S)
        assert (await job.tick()).campaign_results == 1
        after = await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)
        assert after.result.treated_visits + after.result.control_visits == (
            before.treated_visits + before.control_visits - 1)
        assert not after.final
        # once settled the result is final: stored once more, then never recomputed or counted live
        clock.now = campaign.ends_at + SETTLE
        assert (await job.tick()).campaign_results == 1
        final = await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)
        assert final.final and final.as_of == clock.now and final.result == after.result
        await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earns[1].entry.id, idempotency_key="r2")
        clock.advance(days=400)
        assert (await job.tick()).campaign_results == 0
        kept = await latest_result(db, campaign, clock.now, MIN_GROUP, INTERVAL_S)
        assert kept == final
        assert kept.result != await campaign_result(db, campaign, clock.now, MIN_GROUP)  # the late refund
    finally:
        await job.aclose()


async def test_a_campaign_not_started_is_not_computed_by_the_worker(
        db: Any, settings: Any, keys: Any, clock: Any) -> None:
    net = await shops(db, settings, keys, clock, members=3)
    await net.campaign(starts_at=clock.now + dt.timedelta(days=2), ends_at=clock.now + dt.timedelta(days=9))
    job = worker(db, settings, keys, clock)
    try:
        assert (await job.tick()).campaign_results == 0
        assert await snapshot_rows(db) == []
    finally:
        await job.aclose()


async def test_two_writers_at_once_leave_one_row_with_the_later_as_of(
        db: Any, settings: Any, keys: Any, clock: Any) -> None:
    _, campaign, _ = await planted(db, settings, keys, clock)
    early, late = clock.now, clock.now + dt.timedelta(minutes=5)
    await asyncio.gather(*(compute_and_store(db, campaign, at, MIN_GROUP) for at in (late, early, late, early)))
    rows = await snapshot_rows(db)
    assert [row.as_of for row in rows] == [late]
    # an older computation that finishes last does not replace a newer one
    await compute_and_store(db, campaign, early, MIN_GROUP)
    async with db.read() as conn:
        assert (await conn.execute(select(func.max(CampaignResultSnapshot.as_of)))).scalar_one() == late
    stored = await latest_result(db, campaign, late, MIN_GROUP, INTERVAL_S)
    assert stored.as_of == late and stored.result == await campaign_result(db, campaign, late, MIN_GROUP)
