"""`coalition reconcile`: the report on the terminal and as JSON, on a migrated SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from coalition.cli import cli
from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.models import Entry
from coalition.ledger.service import Ledger
from coalition.members.service import enroll_member
from coalition.partners.service import onboard_merchant


def environment(db_file: Path) -> dict[str, str]:
    return {"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}", "COALITION_SECRET_KEY": "cli-secret",
            "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": ""}


def invoke(db_file: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=environment(db_file), catch_exceptions=False)


async def entry_count(db_file: Path) -> int:
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(Entry))).scalar_one())
    finally:
        await db.dispose()


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, int, str]:
    """A migrated database with one bakery and two earns (R-1 23.50, R-2 10.00); the earns' time."""
    db_file = tmp_path / "c.db"
    assert invoke(db_file, "migrate").exit_code == 0

    async def build() -> tuple[int, str]:
        settings = load_settings(environment(db_file))
        db = Database(settings.database_url)
        try:
            merchant = (await onboard_merchant(db, name="Bakery", category=None, earn_rate_points_per_unit=1)).merchant
            member = (await enroll_member(db, NetworkKeys.from_settings(settings), merchant_id=merchant.id,
                                          idempotency_key="e1")).member
            ledger = Ledger(db, settings)
            first = await ledger.earn(merchant_id=merchant.id, loyalty_id=member.loyalty_id, purchase_amount_minor=2350,
                                      reference="R-1", idempotency_key="s1")
            await ledger.earn(merchant_id=merchant.id, loyalty_id=member.loyalty_id, purchase_amount_minor=1000,
                              reference="R-2", idempotency_key="s2")
            return merchant.id, first.entry.created_at.isoformat()
        finally:
            await db.dispose()

    merchant_id, time = asyncio.run(build())
    return db_file, merchant_id, time


def write_file(tmp_path: Path, time: str) -> Path:
    path = tmp_path / "pos.csv"
    path.write_text(f"points,reference,time,amount\n23,R-1,{time},23.50\n10,R-2,{time},10.01\n5,R-7,{time},5\n"
                    f"x,R-8,{time},1\n")
    return path


def test_reconcile_prints_the_differences_and_totals(shop: tuple[Path, int, str], tmp_path: Path) -> None:
    db_file, merchant_id, time = shop
    before = asyncio.run(entry_count(db_file))
    result = invoke(db_file, "reconcile", "--merchant", str(merchant_id), str(write_file(tmp_path, time)))
    assert result.exit_code == 0, result.output
    assert "4 line(s) read" in result.output, result.output
    assert "mismatched" in result.output and "amount" in result.output
    assert "Missing in Coalition (1)" in result.output and "R-7" in result.output
    assert "line 5: points 'x'" in result.output
    assert asyncio.run(entry_count(db_file)) == before
    short = invoke(db_file, "reconcile", "--merchant", str(merchant_id), "--max-lines", "0",
                   str(write_file(tmp_path, time)))
    assert "R-7" not in short.output and "… and 1 more" in short.output


def test_reconcile_as_json(shop: tuple[Path, int, str], tmp_path: Path) -> None:
    db_file, merchant_id, time = shop
    result = invoke(db_file, "reconcile", "--merchant", str(merchant_id), "--json", str(write_file(tmp_path, time)))
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["totals"]["MATCHED"] == {"count": 1, "posPoints": 23, "posAmountMinor": 2350,
                                           "ledgerPoints": 23, "ledgerAmountMinor": 2350}
    assert [(line["status"], line["reference"], line["differences"]) for line in report["lines"]] == [
        ("MATCHED", "R-1", []), ("MISMATCHED", "R-2", ["amount"]), ("MISSING_IN_COALITION", "R-7", [])]
    assert [(e["line"], e["code"]) for e in report["rowErrors"]] == [(5, "INVALID_POINTS")]


def test_reconcile_refuses_what_it_cannot_use(shop: tuple[Path, int, str], tmp_path: Path) -> None:
    db_file, merchant_id, time = shop
    headless = tmp_path / "bad.csv"
    headless.write_text(f"R-1,{time},1,1\n")
    result = CliRunner().invoke(cli, ["reconcile", "--merchant", str(merchant_id), str(headless)],
                                env=environment(db_file))
    assert result.exit_code == 1
    assert "header lacks" in result.output
    unknown = CliRunner().invoke(cli, ["reconcile", "--merchant", "99", str(write_file(tmp_path, time))],
                                 env=environment(db_file))
    assert (unknown.exit_code, "no merchant 99" in unknown.output) == (1, True)
    huge = tmp_path / "huge.csv"
    huge.write_bytes(b"reference,time,amount_minor,points\n" + b"R-1,2026-01-05T12:00:00Z,100,1\n" * 200_000)
    too_big = CliRunner().invoke(cli, ["reconcile", "--merchant", str(merchant_id), str(huge)],
                                 env=environment(db_file))
    assert (too_big.exit_code, "at most 5,242,880" in too_big.output) == (1, True)
