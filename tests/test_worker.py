"""The worker's tick on the test clock: holds released, lots expired, due periods closed once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any

import pytest
from planted_network import forget_cached_insights
from sqlalchemy import select

from coalition.console.dashboard import merchant_dashboard
from coalition.console.rollup import GRACE
from coalition.console.rollup_models import DashboardMerchant
from coalition.settlement.models import SettlementBatch
from coalition.settlement.policy import set_policy
from coalition.worker import Worker


@pytest.fixture(autouse=True)
async def _no_claimed_jobs(settings: Any) -> None:
    # The analysis is claimed per interval in Redis, which outlives the test that claimed it.
    await forget_cached_insights(settings.redis_url)


async def test_a_tick_runs_every_job_and_closes_each_due_period_once(
    db: Any, settings: Any, keys: Any, ledger: Any, clock: Any, make_merchant: Any, make_member: Any,
) -> None:
    shop = (await make_merchant("Bakery", 1)).merchant
    other = (await make_merchant("Books", 1)).merchant
    member = (await make_member(shop.id)).member
    await set_policy(db, settings, now=clock(), effective_from=clock() - dt.timedelta(days=1), period="DAILY")
    await ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=10_000,
                      idempotency_key="e1")
    await ledger.authorize(merchant_id=other.id, loyalty_id=member.loyalty_id, points=30, idempotency_key="h1",
                           expires_in_s=60)
    worker = Worker(db, settings, keys, clock=clock)

    clock.advance(days=1)
    report = await worker.tick()
    assert report.errors == []
    assert report.holds_released == 1 and report.points_expired == 0
    assert len(report.batch_ids) == 1
    async with db.read() as conn:
        batch = (await conn.execute(select(SettlementBatch))).one()
    assert batch.period_end == dt.datetime(2026, 1, 6, tzinfo=dt.UTC)  # midnight UTC after the activity

    again = await worker.tick()
    assert again.batch_ids == [] and again.holds_released == 0  # nothing is due twice

    clock.advance(days=400)
    later = await worker.tick()
    assert later.points_expired == 100 and len(later.batch_ids) == 1
    await worker.aclose()


async def test_run_stops_when_asked(db: Any, settings: Any, keys: Any, clock: Any) -> None:
    worker = Worker(db, settings, keys, clock=clock, settle=False, every_s=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop=stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    await worker.aclose()


async def test_the_analysis_runs_when_its_interval_has_passed(
    db: Any, settings: Any, keys: Any, ledger: Any, clock: Any, make_merchant: Any, make_member: Any,
) -> None:
    await _member_with_points(ledger, make_merchant, make_member)
    worker = Worker(db, settings, keys, clock=clock, settle=False, analyze_every_s=3600)
    try:
        first = await worker.tick()
        assert first.errors == [] and first.analysis_run is not None
        clock.advance(seconds=600)
        assert (await worker.tick()).analysis_run is None  # not due yet
        clock.advance(seconds=3000)
        later = await worker.tick()
        assert later.analysis_run is not None and later.analysis_run != first.analysis_run
        stored = await worker.insights.latest("network")
        assert stored is not None and stored.run_id == later.analysis_run
    finally:
        await worker.aclose()


async def test_each_job_runs_on_its_own_interval(
    db: Any, settings: Any, keys: Any, ledger: Any, clock: Any, make_merchant: Any, make_member: Any,
) -> None:
    shop, member = await _member_with_points(ledger, make_merchant, make_member)
    worker = Worker(db, settings, keys, clock=clock, settle=False, every_s=60, hold_sweep_s=5, webhook_poll_s=0)
    assert [job.name for job in worker.jobs] == ["holds", "expiry", "vouchers", "programs", "refusals", "tiers",
                                                "campaigns", "dashboards"]
    try:
        assert (await worker.tick()).errors == []
        await ledger.authorize(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=30, idempotency_key="h1",
                               expires_in_s=10)
        clock.advance(seconds=4)
        assert worker.seconds_to_next() == pytest.approx(1)
        assert (await worker.tick()).holds_released == 0  # nothing is due yet
        clock.advance(seconds=11)
        swept = await worker.tick()
        assert swept.holds_released == 1 and swept.errors == []
        assert set(worker.last_run) == {"holds", "expiry", "vouchers", "programs", "refusals", "tiers", "campaigns",
                                        "dashboards"}
        assert worker.last_run["holds"] == clock() and worker.last_run["expiry"] == clock() - dt.timedelta(seconds=15)
        assert worker.seconds_to_next() == pytest.approx(5)  # the hold sweep is next
    finally:
        await worker.aclose()


async def test_the_dashboards_job_rolls_up_the_entries_grace_after_it_sees_them(
    db: Any, settings: Any, keys: Any, ledger: Any, clock: Any, make_merchant: Any, make_member: Any,
) -> None:
    shop, _ = await _member_with_points(ledger, make_merchant, make_member)
    worker = Worker(db, settings, keys, clock=clock, only={"dashboards"})
    try:
        assert (await worker.tick()).dashboard_entries == 0  # notes the largest id
        clock.advance(seconds=GRACE.total_seconds())
        rolled = await worker.tick()
        assert rolled.errors == [] and rolled.dashboard_entries == 1
    finally:
        await worker.aclose()
    async with db.read() as conn:
        issued = (await conn.execute(select(DashboardMerchant.issued)
                                     .where(DashboardMerchant.merchant_id == shop.id))).scalar_one()
    assert issued == (await merchant_dashboard(db, shop.id)).points_issued > 0


async def test_only_the_named_jobs_run_and_an_unknown_one_is_refused(db: Any, settings: Any, keys: Any) -> None:
    worker = Worker(db, settings, keys, analyze_every_s=60, only={"analysis"})
    assert [(job.name, job.every_s) for job in worker.jobs] == [("analysis", 60)]
    await worker.aclose()
    off = Worker(db, settings, keys, only={"analysis"})  # an interval of 0 turns the job off
    assert off.jobs == []
    await off.aclose()
    with pytest.raises(ValueError, match="no such worker job: anlysis"):
        Worker(db, settings, keys, only={"anlysis"})


async def test_a_failing_job_is_logged_and_an_outage_is_not(
    db: Any, settings: Any, keys: Any, clock: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = Worker(db, settings, keys, clock=clock, settle=False, only={"holds", "expiry"})
    failures = iter([ConnectionRefusedError(111, "refused"), RuntimeError("a bug")])

    async def fail(*args: Any, **kwargs: Any) -> int:
        raise next(failures)

    monkeypatch.setattr(worker.ledger, "release_expired_holds", fail)
    try:
        with caplog.at_level(logging.INFO, logger="coalition.worker"):
            down = await worker.tick()
            # The other job ran; the outage is the availability tracker's to log, once.
            assert down.errors == ["holds: ConnectionRefusedError: [Errno 111] refused"]
            assert not [r for r in caplog.records if r.exc_info]
            clock.advance(seconds=settings.hold_sweep_interval_s)
            broken = await worker.tick()
        assert broken.errors == ["holds: RuntimeError: a bug"]
        logged = [r for r in caplog.records if r.exc_info]
        assert len(logged) == 1 and "worker job holds failed" in logged[0].getMessage()
    finally:
        await worker.aclose()


async def _member_with_points(ledger: Any, make_merchant: Any, make_member: Any) -> tuple[Any, Any]:
    """A shop, and a member who earned 100 points there."""
    shop = (await make_merchant("Bakery", 1)).merchant
    member = (await make_member(shop.id)).member
    await ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=10_000,
                      idempotency_key="e1")
    return shop, member


async def test_a_tick_releases_gift_card_holds_and_expires_gift_cards(
    db: Any, settings: Any, keys: Any, ledger: Any, clock: Any, make_merchant: Any,
) -> None:

    from coalition.giftcards.service import GiftCards

    expiring = dataclasses.replace(settings, gift_card_expiry_days=30)
    shop = (await make_merchant("Bakery", 1)).merchant
    gift = GiftCards(db, expiring, keys, clock=clock)
    sold = await gift.issue(merchant_id=shop.id, amount_minor=1000, idempotency_key="g1")
    await gift.authorize(merchant_id=shop.id, caller_key="till", code=str(sold.code), amount_minor=400,
                         idempotency_key="g2", expires_in_s=60)
    worker = Worker(db, expiring, keys, clock=clock, settle=False)
    clock.advance(minutes=2)
    report = await worker.tick()
    assert report.errors == [] and report.gift_holds_released == 1 and report.gift_cards_expired == 0
    clock.advance(days=31)
    report = await worker.tick()
    assert report.errors == [] and report.gift_cards_expired == 1
    assert (await gift.liabilities())[0].outstanding_minor == 0
async def test_the_vouchers_job_expires_unused_vouchers_and_refunds_them(
        db: Any, settings: Any, keys: Any, clock: Any, ledger: Any, make_merchant: Any, make_member: Any) -> None:
    from coalition.programs.rewards import create_reward
    from coalition.programs.vouchers import claim_reward

    shop, member = await _member_with_points(ledger, make_merchant, make_member)
    reward = await create_reward(db, merchant_id=shop.id, name="Coffee", points_cost=60, voucher_valid_days=1,
                                 idempotency_key="r", now=clock.now)
    claimed = await claim_reward(ledger, reward_id=reward.id, loyalty_id=member.loyalty_id, merchant_id=shop.id,
                                 idempotency_key="c", now=clock.now)
    assert claimed.member.balance == 40
    clock.advance(days=2)
    worker = Worker(db, settings, keys, clock=clock, settle=False, only=["vouchers"])
    try:
        report = await worker.tick()
    finally:
        await worker.aclose()
    assert (report.vouchers_expired, report.errors) == (1, [])
    async with db.read() as conn:
        from coalition.members.models import Member

        assert (await conn.execute(select(Member.balance).where(Member.id == member.id))).scalar_one() == 100


async def test_the_programs_job_stamps_the_purchases_whose_hook_a_crash_lost(
    db: Any, settings: Any, keys: Any, ledger: Any, clock: Any, make_merchant: Any, make_member: Any,
) -> None:
    from coalition.programs import stamps
    from coalition.programs.reward_models import Stamp
    from coalition.programs.rewards import create_reward

    shop = (await make_merchant("Cafe", 1)).merchant
    member = (await make_member(shop.id)).member
    reward = await create_reward(db, merchant_id=shop.id, name="Coffee", points_cost=10, idempotency_key="r",
                                 now=clock.now)
    await stamps.create_stamp_card(ledger, merchant_id=shop.id, name="Card", stamps_required=5, min_purchase_minor=100,
                                   reward_id=reward.id, idempotency_key="c", now=clock.now)

    async def crashed_earn(key: str) -> None:  # the ledger committed; the process died before the hook
        await ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=500,
                          idempotency_key=key)

    async def stamped() -> int:
        async with db.read() as conn:
            return len((await conn.execute(select(Stamp.id))).all())

    await crashed_earn("e1")
    worker = Worker(db, settings, keys, clock=clock, settle=False, every_s=60, only=["programs"])
    off = Worker(db, dataclasses.replace(settings, programs_catchup_s=0.0), keys, clock=clock)
    try:
        assert "programs" not in [job.name for job in off.jobs]  # a look-back of 0 turns the job off
        assert (await worker.tick()).programs_caught_up == 0  # within the grace period: the live hook's
        clock.advance(seconds=settings.programs_catchup_grace_s + 1)
        assert (await worker.tick()).programs_caught_up == 1
        await crashed_earn("e2")
        clock.advance(seconds=settings.programs_catchup_grace_s + 1)
        report = await worker.tick()  # resumes where the last run ended, and finds the new one
        assert (report.programs_caught_up, report.errors, await stamped()) == (1, [], 2)
        clock.advance(seconds=60)
        assert (await worker.tick()).programs_caught_up == 0
    finally:
        await worker.aclose()
        await off.aclose()
