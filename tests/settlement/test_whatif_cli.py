"""`coalition settle simulate`: a closed batch re-priced on the terminal; nothing written."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import func, select

from coalition.cli import cli
from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.service import Ledger
from coalition.members.service import enroll_member
from coalition.partners.service import onboard_merchant
from coalition.settlement.models import NetworkPolicy, SettlementBatch


def environment(db_file: Path) -> dict[str, str]:
    return {"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}", "COALITION_SECRET_KEY": "whatif-secret",
            "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": ""}


def invoke(db_file: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=environment(db_file))


async def build(db_file: Path) -> None:
    """Bakery issues 100 points, Books honors 40 (positions -100 and +36 at rate 0.90)."""
    settings = load_settings(environment(db_file))
    db = Database(settings.database_url)
    try:
        bakery = (await onboard_merchant(db, name="Bakery", category=None, earn_rate_points_per_unit=1)).merchant
        books = (await onboard_merchant(db, name="Books", category=None, earn_rate_points_per_unit=1)).merchant
        member = (await enroll_member(db, NetworkKeys.from_settings(settings), merchant_id=bakery.id,
                                      idempotency_key="e1")).member
        ledger = Ledger(db, settings)
        await ledger.earn(merchant_id=bakery.id, loyalty_id=member.loyalty_id, purchase_amount_minor=10_000,
                          idempotency_key="s1")
        await ledger.redeem(merchant_id=books.id, loyalty_id=member.loyalty_id, points=40, idempotency_key="r1")
    finally:
        await db.dispose()


async def stored(db_file: Path) -> tuple[int, int]:
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with db.read() as conn:
            batches = (await conn.execute(select(func.count()).select_from(SettlementBatch))).scalar_one()
            policies = (await conn.execute(select(func.count()).select_from(NetworkPolicy))).scalar_one()
            return int(batches), int(policies)
    finally:
        await db.dispose()


def test_simulate_a_closed_batch_at_another_rate(tmp_path: Path) -> None:
    db_file = tmp_path / "c.db"
    assert invoke(db_file, "migrate").exit_code == 0
    asyncio.run(build(db_file))
    assert invoke(db_file, "settle", "--period-end", dt.datetime.now(dt.UTC).isoformat()).exit_code == 0
    before = asyncio.run(stored(db_file))
    result = invoke(db_file, "settle", "simulate", "--batch", "1", "--reimbursement-rate", "0.50")
    assert result.exit_code == 0, result.output
    assert "reimbursement rate 0.5" in result.output
    books = next(line for line in result.output.splitlines() if line.strip().startswith("2 "))
    assert books.split() == ["2", "0.36", "0.20", "-0.16"]  # 40 points x 0.50 instead of x 0.90
    assert "network income" in result.output
    bad = invoke(db_file, "settle", "simulate", "--batch", "1", "--funding-model", "barter")
    assert bad.exit_code == 1 and "fundingModel must be one of" in bad.output
    assert asyncio.run(stored(db_file)) == before
