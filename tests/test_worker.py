"""The worker's tick on the test clock: holds released, lots expired, due periods closed once."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import select

from coalition.settlement.models import SettlementBatch
from coalition.settlement.policy import set_policy
from coalition.worker import Worker


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
    worker = Worker(db, settings, keys, clock=clock, settle=False)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(interval_s=0.01, stop=stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    await worker.aclose()


async def test_the_analysis_runs_when_its_interval_has_passed(
    db: Any, settings: Any, keys: Any, ledger: Any, clock: Any, make_merchant: Any, make_member: Any,
) -> None:
    shop = (await make_merchant("Bakery", 1)).merchant
    member = (await make_member(shop.id)).member
    await ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=10_000,
                      idempotency_key="e1")
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
