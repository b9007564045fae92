"""Two processes claiming the last items in stock: exactly one voucher per item, whatever the interleaving."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
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
    env = {**os.environ, "COALITION_SECRET_KEY": "test-secret-key"}
    lids = [m.loyalty_id for m in members]
    # when two processes each claim once for every member, at the same moment
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), settings.database_url, str(shops.b.id), str(rw.id), f"p{i}", *lids,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env=env) for i in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).strip() == b"ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(proc.communicate(), timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    counts = [Counter(json.loads(out.decode().strip().splitlines()[-1])) for out, _ in outputs]
    # then exactly 9 vouchers between them, the rest out of stock
    assert sum(counts, Counter()) == {"OK": 9, "OUT_OF_STOCK": 51}, counts
    async with db.read() as conn:
        vouchers = (await conn.execute(select(func.count()).select_from(Voucher))).scalar_one()
        stock = (await conn.execute(select(Reward.stock_left).where(Reward.id == rw.id))).scalar_one()
    assert (vouchers, stock) == (9, 0)
