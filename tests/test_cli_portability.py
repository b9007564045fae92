"""``coalition import members`` and ``coalition export``, through click's CliRunner on SQLite."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from click.testing import CliRunner, Result

from coalition.cli import cli
from coalition.config import load_settings
from coalition.db import Database
from coalition.ledger.invariants import ledger_violations
from coalition.partners.service import onboard_merchant

GOOD = "external_id,email,balance\nc-1,ann@example.com,120\nc-2,,30\n"


def environment(db_file: Path) -> dict[str, str]:
    return {"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}", "COALITION_SECRET_KEY": "cli-import-secret",
            "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": ""}


def invoke(db_file: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=environment(db_file), catch_exceptions=False)


def merchant(db_file: Path) -> int:
    async def make() -> int:
        db = Database(load_settings(environment(db_file)).database_url)
        try:
            return int((await onboard_merchant(db, name="Old Program", category="cafe",
                                               earn_rate_points_per_unit=1)).merchant.id)
        finally:
            await db.dispose()

    return asyncio.run(make())


def violations(db_file: Path) -> list[str]:
    async def check() -> list[str]:
        db = Database(load_settings(environment(db_file)).database_url)
        try:
            async with db.read() as conn:
                return await ledger_violations(conn)
        finally:
            await db.dispose()

    return asyncio.run(check())


def test_import_then_export(tmp_path: Path) -> None:
    db_file = tmp_path / "c.db"
    assert invoke(db_file, "migrate").exit_code == 0
    shop = merchant(db_file)
    data = tmp_path / "members.csv"
    data.write_text(GOOD)
    dry = invoke(db_file, "import", "members", str(data), "--merchant", str(shop), "--dry-run")
    assert dry.exit_code == 0 and "nothing was written" in dry.output
    done = invoke(db_file, "import", "members", str(data), "--merchant", str(shop))
    assert done.exit_code == 0 and "imported 2 members" in done.output, done.output
    again = invoke(db_file, "import", "members", str(data), "--merchant", str(shop))
    assert again.exit_code == 0 and "already imported" in again.output
    assert violations(db_file) == []
    out = tmp_path / "members-out.csv"
    exported = invoke(db_file, "export", "members", "--merchant", str(shop), "-o", str(out))
    assert exported.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(int(r["balance"]) for r in rows) == [30, 120] and all(r["enrolled_by_you"] == "yes" for r in rows)
    transactions = invoke(db_file, "export", "transactions")
    assert transactions.exit_code == 0 and transactions.output.count("EARN") == 2


def test_a_bad_file_writes_the_error_file_and_nothing_else(tmp_path: Path) -> None:
    db_file = tmp_path / "c.db"
    invoke(db_file, "migrate")
    shop = merchant(db_file)
    data = tmp_path / "bad.csv"
    data.write_text("external_id,balance,shoe_size\nc-1,-4,42\n")
    result = invoke(db_file, "import", "members", str(data), "--merchant", str(shop))
    assert result.exit_code == 1 and "nothing was imported" in result.output
    errors = (tmp_path / "bad.csv.errors.csv").read_text().splitlines()
    assert errors[0] == "line,column,code,message" and errors[1].startswith("1,shoe_size,UNKNOWN_COLUMN,")
    exported = invoke(db_file, "export", "members")
    assert exported.stdout.strip().splitlines()[0] == (
        "loyalty_id,enrolled_by_you,enrolled_at,balance,held_points,owed_points,lifetime_points,tier")
    assert "0 members exported" in exported.output
