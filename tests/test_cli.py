"""The ``coalition`` command, run through click's CliRunner on a temporary SQLite database.

The demo runs once per module (30 members) and each test that changes data works on its
own copy of that database file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text, update

from coalition.auth.models import ApiKey, Role
from coalition.cli import cli
from coalition.config import load_settings
from coalition.db import Database, utcnow
from coalition.demo import claim_request, example_requests
from coalition.ledger.invariants import ledger_violations
from coalition.ledger.models import Entry, EntryKind, Hold, HoldStatus, Lot
from coalition.members.models import Member
from coalition.migrate import head_revision
from coalition.partners.models import Merchant
from coalition.serving import NoDelayHttpProtocol

SECRET = "cli-test-secret"
KEY = re.compile(r"\bcoa_[A-Za-z0-9_-]{43}\b")


def environment(db_file: Path, **extra: str) -> dict[str, str]:
    return {
        "COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}",
        "COALITION_SECRET_KEY": SECRET,
        "COALITION_REDIS_URL": "",
        "COALITION_ADMIN_KEY": "",
        **extra,
    }


def invoke(db_file: Path, *args: str, **extra: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=environment(db_file, **extra), catch_exceptions=False)


def query(db_file: Path, work: Callable[[Any], Any]) -> Any:
    """Run ``await work(conn)`` on a read connection to the database file."""

    async def run() -> Any:
        db = Database(f"sqlite+aiosqlite:///{db_file}")
        try:
            async with db.transaction() as conn:
                return await work(conn)
        finally:
            await db.dispose()

    return asyncio.run(run())


def scalar(db_file: Path, statement: Any) -> Any:
    async def work(conn: Any) -> Any:
        return (await conn.execute(statement)).scalar_one()

    return query(db_file, work)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    db_file = tmp_path_factory.mktemp("demo") / "demo.db"
    result = invoke(db_file, "demo", "--members", "30", "--merchants", "3", "--seed", "11")
    assert result.exit_code == 0, result.output
    return db_file, result


@pytest.fixture
def demo_db(demo_run: tuple[Path, Result], tmp_path: Path) -> Iterator[Path]:
    """A private copy of the demo database."""
    copy = tmp_path / "coalition.db"
    shutil.copy(demo_run[0], copy)
    yield copy


def test_python_m_coalition_help() -> None:
    done = subprocess.run([sys.executable, "-m", "coalition", "--help"], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    for command in ("serve", "demo", "migrate", "keys", "expire", "release-holds", "check"):
        assert command in done.stdout


def test_a_bad_setting_is_a_clean_error(tmp_path: Path) -> None:
    result = invoke(tmp_path / "x.db", "migrate", COALITION_CURRENCY="EURO")

    assert result.exit_code == 1
    assert "COALITION_CURRENCY" in result.output
    assert not (tmp_path / "x.db").exists()


def test_commands_ask_for_a_migrated_database(tmp_path: Path) -> None:
    result = invoke(tmp_path / "coalition.db", "keys", "list")

    assert result.exit_code == 1
    assert "coalition migrate" in result.output
    assert not (tmp_path / "coalition.db").exists()


def test_migrate_creates_the_database_and_is_idempotent(tmp_path: Path) -> None:
    db_file = tmp_path / "data" / "coalition.db"

    first = invoke(db_file, "migrate")
    second = invoke(db_file, "migrate")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert f"revision {head_revision()}" in second.output.replace("\n", "")
    assert scalar(db_file, text("SELECT version_num FROM alembic_version")) == head_revision()
    assert scalar(db_file, select(func.count()).select_from(Member)) == 0


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db_file = tmp_path / "coalition.db"
    invoke(db_file, "migrate")

    created = invoke(db_file, "keys", "create", "--label", "ops laptop")

    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert KEY.fullmatch(key)
    stored = query(db_file, lambda c: _all_keys(c))
    assert [(k.role, k.label, k.key_hash, k.prefix) for k in stored] == [
        (Role.ADMIN, "ops laptop", hashlib.sha256(key.encode()).hexdigest(), key[:10])
    ]

    listed = invoke(db_file, "keys", "list")
    assert key[:10] in listed.output and key not in listed.output
    assert "ops laptop" in listed.output

    revoked = invoke(db_file, "keys", "revoke", key[:10])
    assert revoked.exit_code == 0, revoked.output
    assert query(db_file, lambda c: _all_keys(c))[0].revoked_at is not None
    again = invoke(db_file, "keys", "revoke", key[:10])
    assert again.exit_code == 1
    assert "no active key" in again.output


def test_keys_create_for_a_merchant(demo_db: Path) -> None:
    merchant_id = scalar(demo_db, select(func.min(Merchant.id)))

    created = invoke(demo_db, "keys", "create", "--merchant", str(merchant_id))
    missing = invoke(demo_db, "keys", "create", "--merchant", "9999")

    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    role, owner = query(demo_db, lambda c: _key_owner(c, key))
    assert (role, owner) == (Role.MERCHANT, merchant_id)
    assert missing.exit_code == 1
    assert "no merchant 9999" in missing.output
    only_admin = invoke(demo_db, "keys", "list")
    assert "MERCHANT" not in only_admin.output and "ADMIN" in only_admin.output
    assert "MERCHANT" in invoke(demo_db, "keys", "list", "--merchant", str(merchant_id)).output


def test_demo_creates_a_consistent_network(demo_run: tuple[Path, Result], demo_db: Path) -> None:
    _, result = demo_run

    assert scalar(demo_db, select(func.count()).select_from(Merchant)) == 3
    assert scalar(demo_db, select(func.count()).select_from(Member)) == 30
    assert scalar(demo_db, select(func.count()).select_from(Member).where(Member.referred_by_id.is_not(None))) > 0
    assert query(demo_db, ledger_violations) == []
    kinds = query(demo_db, _entry_kinds)
    assert kinds[EntryKind.EARN] > 30
    for kind in (EntryKind.REDEEM, EntryKind.REVERSAL, EntryKind.HOLD, EntryKind.CAPTURE):
        assert kinds.get(kind, 0) >= 1, kinds
    # Redemptions happen at shops other than the one that issued the points.
    assert scalar(demo_db, text(
        "SELECT count(*) FROM allocations WHERE kind = 'REDEEM' AND merchant_id != issuer_merchant_id")) > 0
    assert scalar(demo_db, select(func.count()).select_from(Hold).where(Hold.status == HoldStatus.AUTHORIZED)) == 1
    assert scalar(demo_db, select(func.count()).select_from(Hold).where(
        Hold.status == HoldStatus.CAPTURED, Hold.captured_points < Hold.points)) == 1
    # History is spread over months, not stamped "now".
    first = scalar(demo_db, select(Entry.created_at).order_by(Entry.created_at).limit(1))
    assert first.replace(tzinfo=dt.UTC) < utcnow() - dt.timedelta(days=300)
    # Contact data is encrypted at rest.
    assert scalar(demo_db, select(func.count()).select_from(Member).where(Member.email_encrypted.is_not(None))) > 0
    assert scalar(demo_db, text("SELECT count(*) FROM members WHERE email_encrypted LIKE '%example.com%'")) == 0

    # Every printed key (one admin, three merchants) works and is stored only as a hash.
    printed = KEY.findall(result.stdout)
    assert len(printed) == 4 + 2  # and the two curl calls carry the first merchant's key
    hashes = {k.key_hash for k in query(demo_db, lambda c: _all_keys(c))}
    assert {hashlib.sha256(k.encode()).hexdigest() for k in printed} <= hashes
    assert "curl -s http://127.0.0.1:8000/graphql" in result.stdout


def test_the_printed_examples_work_against_the_app(demo_run: tuple[Path, Result], demo_db: Path) -> None:
    _, result = demo_run
    merchant_key = KEY.findall(result.stdout)[1]
    loyalty_id = re.search(r"Sample loyalty ID: (\S+)", result.stdout)
    assert loyalty_id is not None
    settings = load_settings(environment(demo_db, COALITION_HOLD_SWEEP_INTERVAL_S="0"))

    claim_code = re.search(r"claim code: (\S+) ", result.stdout)
    assert claim_code is not None

    async def call() -> list[dict[str, Any]]:
        from coalition.app import create_app

        app = create_app(settings)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                answers = [
                    (await client.post("/graphql", json=body, headers={"Authorization": f"Bearer {merchant_key}"}))
                    .json()
                    for _, body in example_requests(merchant_key, loyalty_id.group(1))
                ]
                # The customer claims the sample member's token without a key, and reads its balance.
                claimed = (await client.post("/graphql", json=claim_request(claim_code.group(1)))).json()
                token = claimed["data"]["claimMemberAccess"]["memberToken"]
                mine = (await client.post("/graphql", json={"query": "{ viewer { ... on MemberViewer { member { "
                                                                      "loyaltyId } } } }"},
                                          headers={"Authorization": f"Bearer {token}"})).json()
                return [*answers, claimed, mine]
        finally:
            await app.state.limiter.aclose()
            await app.state.services.db.dispose()

    viewer, earn, claimed, mine = asyncio.run(call())
    assert claimed["data"]["claimMemberAccess"]["userErrors"] == []
    assert claimed["data"]["claimMemberAccess"]["member"]["loyaltyId"] == loyalty_id.group(1)
    assert mine == {"data": {"viewer": {"member": {"loyaltyId": loyalty_id.group(1)}}}}

    assert viewer == {"data": {"viewer": {"merchant": {"name": "Crumb & Co. Bakery"}}}}
    assert earn["data"]["earnPoints"]["userErrors"] == []
    # 12.50 at the bakery's 2 points per unit: 25, and the demo's tier ladder adds 10 % (SILVER) or 25 % (GOLD)
    assert earn["data"]["earnPoints"]["transaction"]["points"] in {25, 27, 31}


def test_members_claim_code_and_revoke_tokens(demo_db: Path) -> None:
    from coalition.auth.service import Authenticator
    from coalition.members.credentials import claim_member_access

    loyalty_id = scalar(demo_db, select(Member.loyalty_id).order_by(Member.id).limit(1))
    issued = invoke(demo_db, "members", "claim-code", loyalty_id.lower())
    assert issued.exit_code == 0, issued.output
    code = issued.stdout.strip()
    assert re.fullmatch(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){3}", code)
    assert f"/claim#code={code}" in issued.stderr

    async def with_db(work: Callable[[Database], Any]) -> Any:
        db = Database(f"sqlite+aiosqlite:///{demo_db}", pool_size=1)
        try:
            return await work(db)
        finally:
            await db.dispose()

    async def claim(db: Database) -> str:
        return (await claim_member_access(db, code)).member_token

    async def works(db: Database) -> bool:
        return await Authenticator(db, cache_s=0).authenticate(token) is not None

    token = asyncio.run(with_db(claim))
    assert asyncio.run(with_db(works))
    revoked = invoke(demo_db, "members", "revoke-tokens", loyalty_id)
    assert revoked.exit_code == 0 and "revoked 1 credential of member" in revoked.output, revoked.output
    assert not asyncio.run(with_db(works))
    missing = invoke(demo_db, "members", "claim-code", "0000-0000-0000")
    assert missing.exit_code == 1 and "loyalty ID" in missing.output


def test_demo_refuses_a_database_with_merchants(demo_db: Path) -> None:
    refused = invoke(demo_db, "demo", "--members", "5")
    skipped = invoke(demo_db, "demo", "--members", "5", "--if-empty")

    assert refused.exit_code == 1
    assert "--force" in refused.output
    assert skipped.exit_code == 0
    assert KEY.search(skipped.output) is None
    assert scalar(demo_db, select(func.count()).select_from(Member)) == 30


def test_demo_force_adds_a_second_network(demo_db: Path) -> None:
    result = invoke(demo_db, "demo", "--members", "8", "--merchants", "2", "--force")

    assert result.exit_code == 0, result.output
    assert scalar(demo_db, select(func.count()).select_from(Merchant)) == 5
    assert scalar(demo_db, select(func.count()).select_from(Member)) == 38
    assert query(demo_db, ledger_violations) == []


def test_demo_is_reproducible_for_a_seed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    for db_file in (first, second):
        result = invoke(db_file, "demo", "--members", "6", "--merchants", "2", "--seed", "3")
        assert result.exit_code == 0, result.output
        # The keys go to the terminal once, and to no log.
        assert KEY.search(result.stdout) is not None
        assert KEY.search(caplog.text) is None

    history = "SELECT kind, merchant_id, points, amount_minor, reference FROM entries ORDER BY id"
    assert query(first, lambda c: _rows(c, history)) == query(second, lambda c: _rows(c, history))


def test_check_passes_then_reports_a_broken_ledger(demo_db: Path) -> None:
    ok = invoke(demo_db, "check")
    assert ok.exit_code == 0, ok.output
    assert "ledger consistent" in ok.output

    member_id = scalar(demo_db, select(func.max(Member.id)))
    query(demo_db, lambda c: c.execute(update(Member).where(Member.id == member_id).values(
        balance=Member.balance + 7)))
    broken = invoke(demo_db, "check")

    assert broken.exit_code == 1
    assert f"member {member_id}: balance" in broken.output


def test_expire_takes_points_past_their_date(demo_db: Path) -> None:
    lot_id, remaining = query(demo_db, _an_open_lot)
    query(demo_db, lambda c: c.execute(update(Lot).where(Lot.id == lot_id).values(expires_at=text("'2000-01-01'"))))

    result = invoke(demo_db, "expire")

    assert result.exit_code == 0, result.output
    assert f"expired {remaining:,} points from 1 member" in result.output
    assert scalar(demo_db, select(Lot.remaining).where(Lot.id == lot_id)) == 0
    assert query(demo_db, ledger_violations) == []
    assert "expired 0 points" in invoke(demo_db, "expire").output


def test_release_holds_voids_expired_authorizations(demo_db: Path) -> None:
    query(demo_db, lambda c: c.execute(update(Hold).where(Hold.status == HoldStatus.AUTHORIZED).values(
        expires_at=text("'2000-01-01'"))))

    result = invoke(demo_db, "release-holds")

    assert result.exit_code == 0, result.output
    assert "released 1 expired hold" in result.output
    assert scalar(demo_db, select(func.count()).select_from(Hold).where(Hold.status == HoldStatus.AUTHORIZED)) == 0
    assert query(demo_db, ledger_violations) == []


def test_serve_migrates_then_serves_the_app_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coalition import serving

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(serving, "serve", lambda *args, **kwargs: calls.append((args, kwargs)))
    db_file = tmp_path / "var" / "lib" / "coalition.db"

    result = invoke(db_file, "serve", "--host", "0.0.0.0", "--port", "9000", "--workers", "3")

    assert result.exit_code == 0, result.output
    assert scalar(db_file, text("SELECT version_num FROM alembic_version")) == head_revision()
    assert calls == [(("coalition.app:create_app",), {"host": "0.0.0.0", "port": 9000, "workers": 3,
                                                      "log_level": "info"})]


def test_uvicorn_runs_the_app_factory_with_the_nodelay_protocol() -> None:
    from coalition.serving import uvicorn_options

    assert uvicorn_options(host="0.0.0.0", port=9000, workers=3, log_level="info") == {
        "factory": True, "host": "0.0.0.0", "port": 9000, "workers": 3, "log_level": "info",
        "http": NoDelayHttpProtocol, "ws": "websockets-sansio"}


async def _all_keys(conn: Any) -> list[Any]:
    return list(await conn.execute(select(ApiKey).order_by(ApiKey.id)))


async def _key_owner(conn: Any, key: str) -> tuple[Role, int]:
    row = (await conn.execute(select(ApiKey.role, ApiKey.merchant_id).where(
        ApiKey.key_hash == hashlib.sha256(key.encode()).hexdigest()))).one()
    return Role(row.role), row.merchant_id


async def _entry_kinds(conn: Any) -> dict[EntryKind, int]:
    return {EntryKind(k): n for k, n in await conn.execute(select(Entry.kind, func.count()).group_by(Entry.kind))}


async def _an_open_lot(conn: Any) -> tuple[int, int]:
    row = (await conn.execute(select(Lot.id, Lot.remaining).where(Lot.remaining > 0).order_by(Lot.id).limit(1))).one()
    return row.id, row.remaining


async def _rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.execute(text(sql))]


def test_analyze_stores_a_run_and_writes_the_map(demo_db: Path, tmp_path: Path) -> None:
    svg = tmp_path / "map.svg"
    result = invoke(demo_db, "analyze", "--map", str(svg), "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run_id"] == 1 and summary["members"] == 30 and summary["merchants"] == 3
    assert svg.read_bytes().lstrip().startswith(b"<?xml")
    again = invoke(demo_db, "analyze", "--no-map")
    assert again.exit_code == 0 and "analysis run 2 stored" in again.output
    assert invoke(demo_db, "analyze", "--map", str(tmp_path / "map.gif")).exit_code != 0


def test_analyze_every_is_the_worker_running_the_analysis_alone(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coalition.worker import Worker

    seen: list[tuple[list[tuple[str, float]], int | None]] = []

    async def one_round(self: Worker, stop: Any = None) -> None:  # the schedule's first round, then Ctrl-C
        report = await self.tick()
        seen.append(([(job.name, job.every_s) for job in self.jobs], report.analysis_run))
        raise KeyboardInterrupt

    monkeypatch.setattr(Worker, "run", one_round)
    result = invoke(demo_db, "analyze", "--every", "600")

    assert result.exit_code == 0, result.output
    assert "analysing every 600 s" in result.stderr
    assert seen == [([("analysis", 600.0)], 1)]  # the one scheduler, the analysis job alone, at once
    assert invoke(demo_db, "analyze", "--every", "0.5").exit_code != 0  # at least a second, as before


def test_worker_schedules_every_job_with_its_interval(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coalition.worker import Worker

    tables: list[list[tuple[str, float]]] = []

    async def no_loop(self: Worker, stop: Any = None) -> None:
        tables.append([(job.name, job.every_s) for job in self.jobs])

    monkeypatch.setattr(Worker, "run", no_loop)
    assert invoke(demo_db, "worker", "--interval-s", "30", "--analyze-every", "900",
                  COALITION_HOLD_SWEEP_INTERVAL_S="2").exit_code == 0
    assert invoke(demo_db, "worker", "--no-settle", "--analyze-every", "0").exit_code == 0
    assert tables == [[("holds", 2.0), ("expiry", 30.0), ("vouchers", 30.0), ("programs", 30.0), ("refusals", 30.0),
                       ("tiers", 300.0), ("settlement", 30.0), ("webhooks", 1.0), ("campaigns", 300.0),
                       ("dashboards", 30.0), ("analysis", 900.0)],
                      [("holds", 5.0), ("expiry", 60.0), ("vouchers", 60.0), ("programs", 60.0), ("refusals", 60.0),
                       ("tiers", 300.0), ("webhooks", 1.0), ("campaigns", 300.0), ("dashboards", 60.0)]]


def test_a_large_demo_is_bulk_loaded_and_consistent(tmp_path: Path) -> None:
    db_file = tmp_path / "large.db"
    result = invoke(db_file, "demo", "--members", "5000", "--seed", "2")

    assert result.exit_code == 0, result.output
    assert "5000 members" in result.output.replace("\n", " ")
    assert re.search(r"claim code: [0-9A-Z-]{23} ", result.stdout)
    assert "ledger consistent" in invoke(db_file, "check").output
    assert scalar(db_file, select(func.count()).select_from(Member)) == 5000


def test_serve_passes_the_metrics_address_to_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coalition import serving

    # The command writes the metrics address into os.environ for its workers: it writes into a copy
    # here, which monkeypatch swaps back afterwards, so the address does not reach later tests (the
    # served workers of tests/test_serving.py would each try to open that metrics port).
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("COALITION_METRICS_")})
    seen: list[tuple[str | None, str | None]] = []
    monkeypatch.setattr(serving, "serve", lambda *args, **kwargs: seen.append(
        (os.environ.get("COALITION_METRICS_PORT"), os.environ.get("COALITION_METRICS_HOST"))))

    result = invoke(tmp_path / "coalition.db", "serve", "--metrics-port", "9100", "--metrics-host", "10.0.0.5")

    assert result.exit_code == 0, result.output
    assert seen == [("9100", "10.0.0.5")]
    assert "metrics on http://10.0.0.5:9100/metrics" in result.output


def test_the_database_file_is_created_private(tmp_path: Path) -> None:
    db_file = tmp_path / "data" / "coalition.db"
    old_umask = os.umask(0o022)
    try:
        assert invoke(db_file, "migrate").exit_code == 0
        assert invoke(db_file, "keys", "create").exit_code == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    for companion in db_file.parent.glob("coalition.db-*"):  # -wal, -shm while a connection was open
        assert stat.S_IMODE(companion.stat().st_mode) == 0o600, companion


def test_the_demo_sets_tiers_and_leaves_a_finished_campaign_with_a_result(demo_run: tuple[Path, Result],
                                                                          demo_db: Path) -> None:
    assert "Status tiers BASIC / SILVER / GOLD are set" in demo_run[1].output
    tiers = invoke(demo_db, "programs", "tiers")
    assert tiers.exit_code == 0 and "GOLD" in tiers.output and "x1.25" in tiers.output
    campaigns = invoke(demo_db, "programs", "campaigns")
    assert campaigns.exit_code == 0, campaigns.output
    assert "Double points month" in campaigns.output and "treated" in campaigns.output
    assert "lift: spend" in campaigns.output
