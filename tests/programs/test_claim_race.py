"""Two processes claiming the last items in stock: exactly one voucher per item, whatever the interleaving."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from process_race import race
from sqlalchemy import func, select

from coalition.programs.reward_models import Reward, Voucher
from coalition.programs.rewards import create_reward

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
WORKER = Path(__file__).with_name("claim_race_worker.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.services
@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set COALITION_TEST_DATABASE_URL (make test-services)")
async def test_two_processes_claiming_never_oversell(shops: Any, settings: Any, db: Any) -> None:
    # given 30 members with points for two claims each, and 9 items in stock
    members = [await shops.member() for _ in range(30)]
    for member in members:
        await shops.earn(member, 20)
    rw = await create_reward(db, merchant_id=shops.b.id, name="Last books", points_cost=10, stock=9,
                             idempotency_key="rw", now=shops.now)
    lids = [m.loyalty_id for m in members]
    # when two processes each claim once for every member, at the same moment
    outputs = await race(WORKER, [[settings.database_url, str(shops.b.id), str(rw.id), f"p{i}", *lids]
                                  for i in range(2)])
    counts = [Counter(out) for out in outputs]
    # then exactly 9 vouchers between them, the rest out of stock
    assert sum(counts, Counter()) == {"OK": 9, "OUT_OF_STOCK": 51}, counts
    async with db.read() as conn:
        vouchers = (await conn.execute(select(func.count()).select_from(Voucher))).scalar_one()
        stock = (await conn.execute(select(Reward.stock_left).where(Reward.id == rw.id))).scalar_one()
    assert (vouchers, stock) == (9, 0)
