"""Stored insights: whole runs or nothing, the newest served, Redis as a cache only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from redis.exceptions import RedisError
from sqlalchemy import func, select, text

from coalition.network.loyalty import LoyaltyType
from coalition.network.models import InsightRun, RunStatus
from coalition.network.store import KEEP_RUNS, NETWORK_SCOPE, InsightStore, merchant_scope, rfm_blob, rfm_scope


@pytest.fixture
async def store(db: Any, settings: Any) -> AsyncIterator[InsightStore]:
    store = InsightStore(db, settings.redis_url, cache_s=60)
    if store.redis is not None:
        await store.redis.flushdb()
    yield store
    await store.aclose()


async def _run(store: InsightStore, value: int) -> int:
    run_id = await store.start_run({"value": value})
    await store.finish_run(run_id, {NETWORK_SCOPE: {"value": value}, merchant_scope(1): {"mine": value}},
                           {"map.svg": b"<svg/>"}, {"members": value})
    return run_id


async def test_nothing_is_served_before_the_first_run(store: InsightStore) -> None:
    assert await store.latest(NETWORK_SCOPE) is None
    run_id = await store.start_run({})
    assert await store.latest(NETWORK_SCOPE) is None  # a run in progress is not served
    await store.fail_run(run_id, "boom")
    assert await store.latest(NETWORK_SCOPE) is None


async def test_the_newest_successful_run_is_served_with_its_time(store: InsightStore) -> None:
    await _run(store, 1)
    second = await _run(store, 2)
    failed = await store.start_run({})
    await store.fail_run(failed, "boom")

    for _ in range(2):  # from the database, then (with Redis) from the cache
        network = await store.latest(NETWORK_SCOPE)
        assert network is not None
        assert (network.run_id, network.payload) == (second, {"value": 2})
        assert network.computed_at >= network.started_at
        assert 0 <= network.age_s() < 60
    mine = await store.latest(merchant_scope(1))
    assert mine is not None and mine.payload == {"mine": 2}
    other = await store.latest(merchant_scope(2))  # a merchant the run had nothing for
    assert other is not None and other.payload == {} and other.run_id == second
    blob = await store.latest_blob("map.svg")
    assert blob is not None and blob[1] == b"<svg/>"


async def test_old_runs_are_pruned(store: InsightStore, db: Any) -> None:
    for value in range(KEEP_RUNS + 3):
        await _run(store, value)
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(InsightRun))).scalar_one() == KEEP_RUNS
        statuses = set((await conn.execute(select(InsightRun.status))).scalars())
    assert statuses == {RunStatus.SUCCEEDED}
    latest = await store.latest(NETWORK_SCOPE)
    assert latest is not None and latest.payload == {"value": KEEP_RUNS + 2}


async def test_without_redis_the_database_answers(store: InsightStore, monkeypatch: Any) -> None:
    await _run(store, 1)
    if store.redis is not None:
        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RedisError("down")
        monkeypatch.setattr(store.redis, "get", broken)
    latest = await store.latest(NETWORK_SCOPE)
    assert latest is not None and latest.payload == {"value": 1}


async def test_a_scheduled_job_is_claimed_by_one_process(store: InsightStore) -> None:
    first = await store.claim("analyze", 60)
    second = await store.claim("analyze", 60)
    assert first is True
    assert second is (store.redis is None)  # without Redis every process runs its own schedule


async def test_large_payloads_are_stored_compressed_with_lz4_on_postgresql(store: InsightStore, db: Any) -> None:
    if db.is_sqlite:
        pytest.skip("TOAST compression is PostgreSQL's: set COALITION_TEST_DATABASE_URL")
    async with db.read() as conn:
        lz4 = (await conn.execute(text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"))).scalar()
    if not lz4:
        pytest.skip("this PostgreSQL server was built without lz4")
    payload = {"member_ids": list(range(20_000))}  # well over the 2 kB from which PostgreSQL compresses
    run_id = await store.start_run({})
    await store.finish_run(run_id, {NETWORK_SCOPE: payload}, {}, {})
    async with db.read() as conn:
        method = (await conn.execute(text(
            "SELECT pg_column_compression(payload) FROM insight_results WHERE run_id = :run"), {"run": run_id}
        )).scalar_one()
        setting, reset = (await conn.execute(text(
            "SELECT current_setting('default_toast_compression'), reset_val FROM pg_settings "
            "WHERE name = 'default_toast_compression'"))).one()
    assert method == "lz4"
    assert setting == reset  # SET LOCAL: the pooled connection is left as it was
    latest = await store.latest(NETWORK_SCOPE)
    assert latest is not None and latest.payload == payload


RFM_ROWS = {"member_ids": [3, 7, 12], "r": [5, 1, 3], "f": [4, 2, 1], "m": [5, 5, 2],
            "recency_s": [86_400, 9_000_000, 400_000], "frequency": [9, 2, 1],
            "monetary_minor": [120_000, 45_000, 999], "type": [3, 1, 0]}


@pytest.mark.parametrize("form", ["binary", "json"])
async def test_a_members_rfm_is_read_from_the_newest_run(store: InsightStore, form: str) -> None:
    # "json": the RFM columns as runs stored them before the binary form, still read after an upgrade.
    assert await store.member_rfm(1, 7) is None  # no run yet
    await _run(store, 1)  # a run without RFM columns for merchant 1
    assert await store.member_rfm(1, 7) is None
    run_id = await store.start_run({})
    if form == "binary":
        columns = {name: np.asarray(values) for name, values in RFM_ROWS.items()}
        columns |= {name: columns[name].astype(np.int8) for name in ("r", "f", "m", "type")}
        await store.finish_run(run_id, {}, {rfm_scope(1): rfm_blob(columns)}, {})
    else:
        await store.finish_run(run_id, {rfm_scope(1): RFM_ROWS}, {}, {})

    assert await store.member_rfm(1, 7) == [1, 2, 5, 9_000_000, 2, 45_000, LoyaltyType(1).name]
    assert await store.member_rfm(1, 12) == [3, 1, 2, 400_000, 1, 999, LoyaltyType(0).name]
    assert await store.member_rfm(1, 5) is None  # between two buyers
    assert await store.member_rfm(1, 13) is None  # after the last
    assert await store.member_rfm(2, 7) is None  # another merchant
    columns_read = await store.rfm_columns(1)
    assert columns_read is not None
    assert {name: values.tolist() for name, values in columns_read.items()} == RFM_ROWS
