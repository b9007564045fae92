"""An analysis run over a network built through the real services finds what was planted."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from planted_network import build_planted, forget_cached_insights

from coalition.network.jobs import run_analysis
from coalition.network.loader import load_network
from coalition.network.loyalty import LoyaltyType
from coalition.network.pipeline import analyze_all
from coalition.network.reviews import load_reviews
from coalition.network.store import NETWORK_SCOPE, RFM_COLUMNS, InsightStore, merchant_scope
from coalition.worker import Worker


@pytest.fixture(autouse=True)
async def _no_cached_insights(settings: Any) -> None:
    await forget_cached_insights(settings.redis_url)


async def test_a_run_finds_the_planted_fraud_and_scopes_merchants(db: Any, settings: Any, keys: Any, ledger: Any,
                                                                   clock: Any) -> None:
    net = await build_planted(db, keys, ledger, clock)
    stages: list[str] = []

    run = await run_analysis(db, settings, progress=lambda stage, done, total: stages.append(stage), now=clock.now)

    assert stages[0] == "merchants" and stages[-1] == "done" and "pagerank" in stages
    assert run.map_png is not None and run.map_png.startswith(b"\x89PNG")
    assert run.summary["members"] == len(net.members)
    store = InsightStore(db, settings.redis_url)
    try:
        network = await store.latest(NETWORK_SCOPE)
        assert network is not None and network.run_id == run.run_id
        alerts = {a["kind"]: a for a in network.payload["fraud_alerts"]}
        assert set(alerts["SYBIL_FARM"]["member_ids"]) == {net.sybil_referrer, *net.sybils}
        assert alerts["MERCHANT_COLLUSION"]["merchant_ids"] == [net.shops["X"].id, net.shops["Y"].id]
        assert set(alerts["MERCHANT_COLLUSION"]["member_ids"]) == set(net.colluders)
        assert network.payload["top_referrers"][0]["member_id"] in {net.sybil_referrer, net.honest_referrer}

        for name, shop in net.shops.items():
            mine = await store.latest(merchant_scope(shop.id))
            assert mine is not None
            listed = {m["member_id"] for m in mine.payload["win_back"] + mine.payload["top_referrers"]}
            rfm = await store.rfm_columns(shop.id)
            assert rfm is not None
            listed |= set(rfm["member_ids"].tolist())
            # Only the shop's own members: enrolled there or bought there.
            buyers = await _buyers(db, shop.id)
            assert listed <= buyers | {m for m, home in net.members.items() if home == name}, name
        b = await store.latest(merchant_scope(net.shops["B"].id))
        assert b is not None
        assert [r["member_id"] for r in b.payload["top_referrers"]] == [net.honest_referrer]
        assert sum(s["members"] for s in b.payload["segments"]) > 0
    finally:
        await store.aclose()


async def _buyers(db: Any, merchant_id: int) -> set[int]:
    from sqlalchemy import select

    from coalition.ledger.models import Entry

    async with db.read() as conn:
        return set((await conn.execute(select(Entry.member_id).where(Entry.merchant_id == merchant_id))).scalars())


async def test_the_schedule_runs_at_once_then_waits(db: Any, settings: Any, keys: Any) -> None:
    # The one scheduler (coalition/worker.py) with the analysis alone: `coalition analyze --every`.
    worker = Worker(db, settings, keys, analyze_every_s=3600, only={"analysis"})
    store = worker.insights
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(200):
            if await store.latest(NETWORK_SCOPE) is not None:
                break
            await asyncio.sleep(0.05)
        stored = await store.latest(NETWORK_SCOPE)
        assert stored is not None and stored.run_id == 1
        assert not task.done()  # asleep until the next hour
        assert worker.seconds_to_next() > 3000
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.aclose()


async def test_stored_scopes_hold_what_the_analysis_computed(db: Any, settings: Any, keys: Any, ledger: Any,
                                                            clock: Any) -> None:
    # The RFM columns are stored in binary and a merchant's member count is grouped once for all
    # merchants: what is read back must be exactly what an independent analysis of the same data finds.
    net = await build_planted(db, keys, ledger, clock)
    await run_analysis(db, settings, draw_map=False, now=clock.now)
    data = await load_network(db, now=clock.now)
    analysis = analyze_all(data.members, data.purchases, data.referrals, data.flows, data.as_of, draw_map=False,
                           reviews=await load_reviews(db))
    rfm, types = analysis.segments.rfm, analysis.segments.types
    assert rfm.merchant_ids is not None
    purchases = list(zip(data.purchases.member_ids.tolist(), data.purchases.merchant_ids.tolist(), strict=True))
    enrolled = list(zip(data.members.ids.tolist(), data.enrolled_by.tolist(), strict=True))
    store = InsightStore(db, settings.redis_url)
    rows = 0
    try:
        for name, shop in net.shops.items():
            at = rfm.merchant_ids == shop.id
            expected = sorted(zip(rfm.member_ids[at].tolist(), rfm.r[at].tolist(), rfm.f[at].tolist(),
                                  rfm.m[at].tolist(), rfm.recency_s[at].tolist(), rfm.frequency[at].tolist(),
                                  rfm.monetary_minor[at].tolist(), types[at].tolist(), strict=True))
            rows += len(expected)
            columns = await store.rfm_columns(shop.id)
            assert columns is not None
            assert list(zip(*(columns[c].tolist() for c in RFM_COLUMNS), strict=True)) == expected, name
            for member_id, *values, loyalty_type in expected:
                assert await store.member_rfm(shop.id, member_id) == [*values, LoyaltyType(loyalty_type).name]
            strangers = set(net.members) - {row[0] for row in expected}
            assert strangers and await store.member_rfm(shop.id, min(strangers)) is None

            own = {m for m, k in purchases if k == shop.id} | {m for m, k in enrolled if k == shop.id}
            mine = await store.latest(merchant_scope(shop.id))
            assert mine is not None and mine.payload["members"] == len(own), name
        assert rows > 100
    finally:
        await store.aclose()
