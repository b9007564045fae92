"""`coalition settle export --format csv|html|pdf|png` on a migrated SQLite file."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from coalition.cli import cli
from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.service import Ledger
from coalition.members.service import enroll_member
from coalition.partners.service import onboard_merchant


def environment(db_file: Path) -> dict[str, str]:
    return {"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}", "COALITION_SECRET_KEY": "export-secret",
            "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": ""}


def invoke(db_file: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=environment(db_file), catch_exceptions=False)


@pytest.fixture(scope="module")
def settled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """Bakery issues 100 points, Books honors 40 of them; one batch closed. Returns the file and both ids."""
    db_file = tmp_path_factory.mktemp("export") / "c.db"
    assert invoke(db_file, "migrate").exit_code == 0

    async def build() -> tuple[int, int]:
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
            return bakery.id, books.id
        finally:
            await db.dispose()

    bakery, books = asyncio.run(build())
    result = invoke(db_file, "settle", "--period-end", dt.datetime.now(dt.UTC).isoformat())
    assert result.exit_code == 0, result.output
    return db_file, bakery, books


def test_csv_of_the_batch_and_of_a_statement(settled: tuple[Path, int, int], tmp_path: Path) -> None:
    db_file, _, books = settled
    result = invoke(db_file, "settle", "export", "--batch", "1", "--format", "csv")
    assert result.exit_code == 0, result.output
    nets = {r["merchant_name"]: int(r["net_minor"]) for r in csv.DictReader(io.StringIO(result.stdout))}
    assert nets == {"Bakery": -100, "Books": 36}  # charged 100 points; 40 x 0.90 reimbursed
    out = tmp_path / "books.csv"
    result = invoke(db_file, "settle", "export", "--batch", "1", "--merchant", str(books), "--format", "csv",
                    "-o", str(out))
    assert result.exit_code == 0, result.output
    assert sum(int(r["effect_minor"]) for r in csv.DictReader(io.StringIO(out.read_text()))) == 36


def test_the_report_as_html_pdf_and_png(settled: tuple[Path, int, int], tmp_path: Path) -> None:
    db_file, _, books = settled
    for fmt, start in (("html", b"<!doctype html>"), ("pdf", b"%PDF-"), ("png", b"\x89PNG\r\n\x1a\n")):
        out = tmp_path / f"report.{fmt}"
        result = invoke(db_file, "settle", "export", "--batch", "1", "--format", fmt, "-o", str(out))
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(start), fmt
    page = (tmp_path / "report.html").read_text()
    assert "Bakery" in page and "-€1.00" in page and "€0.36" in page
    statement = invoke(db_file, "settle", "export", "--batch", "1", "--merchant", str(books), "--format", "html")
    # Another partner's €1.00 is not in the words a reader sees (the charts' SVG markup has numbers of its own).
    words = re.sub(r"<[^>]*>", " ", statement.stdout)
    assert "Statement of Books" in words and "1.00" not in words
    hebrew = invoke(db_file, "settle", "export", "--batch", "1", "--merchant", str(books), "--format", "html",
                    "--lang", "he")
    assert hebrew.exit_code == 0 and 'dir="rtl"' in hebrew.stdout and "דוח של Books" in hebrew.stdout


def test_unknown_batch_or_merchant(settled: tuple[Path, int, int]) -> None:
    db_file, _, _ = settled
    missing = CliRunner().invoke(cli, ["settle", "export", "--batch", "9", "--format", "csv"],
                                 env=environment(db_file))
    assert (missing.exit_code, "no settlement batch 9" in missing.output) == (1, True)
    stranger = CliRunner().invoke(cli, ["settle", "export", "--batch", "1", "--merchant", "77", "--format", "pdf"],
                                  env=environment(db_file))
    assert (stranger.exit_code, "merchant 77 has no statement" in stranger.output) == (1, True)
