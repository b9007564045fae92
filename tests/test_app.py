"""The application's lifespan: what it sets up for the process and takes down again."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from sqlalchemy import select

from coalition.app import IDLE_IN_TRANSACTION_S, create_app
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Hold, HoldStatus
from coalition.ledger.service import Ledger


async def test_startup_freezes_what_is_alive_and_shutdown_unfreezes_it(app: Any) -> None:
    # The collector's full passes then skip the objects that live as long as the process
    # (modules, the schema, caches) instead of stalling every request to walk them again.
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


async def test_the_api_schedules_nothing_unless_told(
    app: Any, settings: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    # COALITION_RUN_WORKER is off by default: the periodic jobs are `coalition worker`'s.
    assert settings.run_worker is False
    async with app.router.lifespan_context(app):
        assert app.state.scheduler is None
    told_to_analyze = create_app(settings.with_overrides(analyze_interval_s=3600.0))
    try:
        with caplog.at_level(logging.WARNING, logger="coalition.worker"):
            async with told_to_analyze.router.lifespan_context(told_to_analyze):
                assert told_to_analyze.state.scheduler is None
        assert any("COALITION_RUN_WORKER=1" in r.getMessage() for r in caplog.records)
    finally:
        await _dispose(told_to_analyze)


async def test_told_to_run_the_worker_the_api_releases_expired_holds(
    db: Any, settings: Any, make_merchant: Any, make_member: Any,
) -> None:
    shop = (await make_merchant("Bakery", 1)).merchant
    member = (await make_member(shop.id)).member
    ledger = Ledger(db, settings)  # the real clock: the scheduler in the app runs on it
    await ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=10_000,
                      idempotency_key="e1")
    held = await ledger.authorize(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=30,
                                  idempotency_key="h1", expires_in_s=1)
    app = create_app(settings.with_overrides(run_worker=True, hold_sweep_interval_s=0.05))
    try:
        async with app.router.lifespan_context(app):
            scheduler = app.state.scheduler
            assert [job.name for job in scheduler.jobs] == ["holds", "expiry", "vouchers", "programs", "refusals",
                                                            "tiers", "settlement", "webhooks", "campaigns",
                                                            "dashboards"]
            assert scheduler.db is not app.state.services.db  # its own engine, without the API's timeouts
            assert scheduler.db.timeouts.idle_in_transaction_s is None  # a settlement run prices between statements
            assert app.state.services.db.timeouts.idle_in_transaction_s == IDLE_IN_TRANSACTION_S
            status = HoldStatus.AUTHORIZED
            for _ in range(100):
                async with db.read() as conn:
                    status = (await conn.execute(select(Hold.status).where(Hold.id == held.entry.id))).scalar_one()
                if status != HoldStatus.AUTHORIZED:
                    break
                await asyncio.sleep(0.05)
            assert status == HoldStatus.EXPIRED
    finally:
        await _dispose(app)
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


async def _dispose(app: Any) -> None:
    await app.state.limiter.aclose()
    await app.state.services.insights.aclose()
    await app.state.services.db.dispose()
