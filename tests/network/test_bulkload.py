"""A synthetic network bulk-loaded into the ledger is consistent, and the analysis finds its planted fraud."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select, text

from coalition.ledger.invariants import ledger_violations
from coalition.members.models import Member
from coalition.network.bulkload import _ledger, load_synthetic
from coalition.network.graphs import EARN, REDEEM
from coalition.network.jobs import run_analysis
from coalition.network.store import NETWORK_SCOPE, InsightStore
from coalition.network.synthetic import generate


def test_redemptions_take_lots_first_in_first_out_and_never_overdraw() -> None:
    members = np.array([1, 1, 1, 1, 2, 2], dtype=np.int64)
    kinds = np.array([EARN, EARN, REDEEM, REDEEM, REDEEM, EARN], dtype=np.int8)
    points = np.array([10, 5, 12, 9, 4, 7], dtype=np.int64)

    ledger = _ledger(members, kinds, points)

    assert ledger.redeem.tolist() == [2, 3]  # member 2's redemption before any earn is dropped
    assert ledger.redeem_points.tolist() == [12, 3]  # the second is cut down to the balance
    assert list(zip(ledger.alloc_redeem.tolist(), ledger.alloc_lot.tolist(), ledger.alloc_points.tolist(),
                    strict=True)) == [(0, 0, 10), (0, 1, 2), (1, 1, 3)]
    assert ledger.lot_remaining.tolist() == [0, 0, 7]
    assert ledger.balance.tolist() == [0, 7] and ledger.lifetime.tolist() == [15, 7]


async def test_a_bulk_loaded_network_is_consistent_and_analysed(db: Any, keys: Any, settings: Any) -> None:
    network = generate(n_members=1500, n_merchants=20, n_purchases=12_000, seed=3, sybil_farms=2, farm_size=15,
                       collusion_pairs=1, collusion_members=20, shared_groups=3)
    async with db.read() as conn:
        before = None if db.is_sqlite else (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()

    loaded = await load_synthetic(db, keys, network, merchant_names=[(f"Shop {i}", "test") for i in range(20)],
                                  shift_s=0)

    async with db.read() as conn:
        assert await ledger_violations(conn) == []
        assert (await conn.execute(select(func.count()).select_from(Member))).scalar_one() == 1500
    assert loaded.rows["members"] == 1500
    if before is not None:  # PostgreSQL: the planner has statistics for what was written (autovacuum may be off)
        async with db.read() as conn:
            analysed = (await conn.execute(text(
                "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'entries'"))).scalar_one()
        assert analysed is not None and analysed >= before
    run = await run_analysis(db, settings, draw_map=False)
    store = InsightStore(db)
    stored = await store.latest(NETWORK_SCOPE)
    assert stored is not None and stored.run_id == run.run_id
    sybils = {m for a in stored.payload["fraud_alerts"] if a["kind"] == "SYBIL_FARM" for m in a["member_ids"]}
    planted = {int(loaded.member_ids[i - 1]) for i in network.truth.sybil_referrers.tolist()}
    assert planted <= sybils
