"""Member imports: validation first (errors by line), then one idempotent, all-or-nothing load."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Entry, Lot, Posting
from coalition.ledger.service import Ledger
from coalition.members.models import Member
from coalition.members.service import enroll_member
from coalition.portability.reader import Limits
from coalition.portability.service import import_members, limits_from, write_error_file

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
GOOD = (
    "external_id,email,phone,balance,date\n"
    "c-1,ann@example.com,+44 7700 900123,120,2025-06-01\n"
    "c-2,bob@example.com,,0,\n"
    "c-3,,+33 6 12 34 56 78,35,\n"
)
WITH_HISTORY = (
    "type,external_id,email,balance,points,amount_minor,date,reference\n"
    "earn,h-1,,,10,1000,2025-03-01T09:30:00Z,visit\n"
    "member,h-1,hist@example.com,5,,,,\n"
    "earn,h-1,,,20,,2025-04-01,\n"
)


async def counts(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        return {t.__tablename__: int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
                for t in (Member, Entry, Posting, Lot)}


async def consistent(db: Database) -> None:
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def make(content: str | bytes, name: str = "members.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return make


async def run(db: Database, keys: NetworkKeys, settings: Settings, merchant_id: int, path: Path,
              **kwargs: Any) -> Any:
    limits = kwargs.pop("limits", None) or limits_from(settings)
    return await import_members(db, keys, merchant_id=merchant_id, path=path, limits=limits,
                                expiry_days=settings.points_expiry_days, now=NOW, **kwargs)


async def test_a_valid_file_imports_members_balances_and_contact(db: Database, keys: NetworkKeys,
                                                                 settings: Settings, make_merchant: Any,
                                                                 write: Any) -> None:
    shop = (await make_merchant()).merchant
    result = await run(db, keys, settings, shop.id, write(GOOD))
    assert result.status == "IMPORTED", result.errors
    assert (result.members_created, result.entries_created, result.postings_created) == (3, 2, 4)
    async with db.session() as session:
        members = (await session.execute(select(Member).order_by(Member.id))).scalars().all()
        entries = (await session.execute(select(Entry).order_by(Entry.id))).scalars().all()
    assert [m.balance for m in members] == [120, 0, 35]
    assert all(m.enrolled_by_merchant_id == shop.id for m in members)
    # contact data encrypted at rest and blind-indexed as enrollment does it
    assert members[0].email_encrypted is not None and b"ann@" not in members[0].email_encrypted
    assert keys.decrypt(members[0].email_encrypted) == "ann@example.com"
    assert keys.decrypt(members[0].phone_encrypted) == "+447700900123"
    assert members[0].email_index == keys.blind_index("email", "ann@example.com")
    # the opening balance keeps its date beside the recorded one
    assert entries[0].effective_at == dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    assert entries[0].created_at == NOW
    assert entries[1].effective_at is None
    await consistent(db)
    # enrollment refuses the imported contact, as for any member
    with pytest.raises(Exception, match="already enrolled"):
        await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="x", email="ANN@example.com")


async def test_history_rows_keep_their_dates_and_add_to_the_balance(db: Database, keys: NetworkKeys,
                                                                    settings: Settings, make_merchant: Any,
                                                                    write: Any, clock: Any) -> None:
    shop = (await make_merchant()).merchant
    result = await run(db, keys, settings, shop.id, write(WITH_HISTORY))
    assert result.status == "IMPORTED", result.errors
    async with db.session() as session:
        member = (await session.execute(select(Member))).scalar_one()
        entries = (await session.execute(select(Entry).order_by(Entry.effective_at))).scalars().all()
    assert member.balance == member.lifetime_points == 35
    assert [(e.points, e.effective_at) for e in entries if e.reference != "opening balance"] == [
        (10, dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)), (20, dt.datetime(2025, 4, 1, tzinfo=dt.UTC))]
    await consistent(db)
    # the ledger works on imported members: redeem across the imported lots
    ledger = Ledger(db, settings, clock=clock)
    await ledger.redeem(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=30, idempotency_key="r")
    await consistent(db)


async def test_re_running_the_same_file_changes_nothing(db: Database, keys: NetworkKeys, settings: Settings,
                                                        make_merchant: Any, write: Any) -> None:
    shop = (await make_merchant()).merchant
    path = write(GOOD)
    assert (await run(db, keys, settings, shop.id, path)).status == "IMPORTED"
    before = await counts(db)
    again = await run(db, keys, settings, shop.id, path)
    assert again.status == "ALREADY_IMPORTED" and again.members_created == 0
    assert await counts(db) == before
    await consistent(db)


async def test_two_runs_of_one_file_at_once_import_it_once(db: Database, keys: NetworkKeys, settings: Settings,
                                                           make_merchant: Any, write: Any) -> None:
    shop = (await make_merchant()).merchant
    path = write(GOOD)
    results = await asyncio.gather(*(run(db, keys, settings, shop.id, path) for _ in range(3)),
                                   return_exceptions=True)
    statuses = sorted(r.status if not isinstance(r, BaseException) else repr(r) for r in results)
    assert statuses.count("IMPORTED") == 1, statuses
    assert set(statuses) <= {"IMPORTED", "ALREADY_IMPORTED", "INVALID"}, statuses
    assert (await counts(db))["members"] == 3
    await consistent(db)


async def test_dry_run_validates_and_writes_nothing(db: Database, keys: NetworkKeys, settings: Settings,
                                                    make_merchant: Any, write: Any) -> None:
    shop = (await make_merchant()).merchant
    before = await counts(db)
    result = await run(db, keys, settings, shop.id, write(GOOD), dry_run=True)
    assert result.status == "DRY_RUN" and result.scan.members == 3 and result.scan.postings == 4
    assert await counts(db) == before


BAD_CASES = [
    # (file content, expected (line, column, code) errors)
    ("external_id,balance\nc-1,-5\n", [(2, "balance", "NEGATIVE_BALANCE")]),
    ("external_id,balance\nc-1,5\nc-1,6\n", [(3, "external_id", "DUPLICATE_EXTERNAL_ID")]),
    ("external_id,email\nc-1,a@example.com\nc-2,A@example.com\n", [(3, "email", "DUPLICATE_CONTACT")]),
    ("external_id,colour\nc-1,red\n", [(1, "colour", "UNKNOWN_COLUMN"), (1, "", "INVALID_HEADER")]),
    ("email\na@example.com\n", [(1, "external_id", "MISSING_COLUMN"), (1, "", "INVALID_HEADER")]),
    (b"external_id,balance\nc-1,5\nc-\xff2,6\n", [(3, "", "INVALID_ENCODING")]),
    (b"\xff\xfeexternal_id\n", [(1, "", "INVALID_ENCODING")]),
    ("external_id,balance\nc-1,5,6\n", [(2, "", "WRONG_FIELD_COUNT")]),
    ("external_id,balance\nc-1,lots\n", [(2, "balance", "INVALID_NUMBER")]),
    ("external_id,email\nc-1,not-an-address\n", [(2, "email", "INVALID_EMAIL")]),
    ("external_id,phone\nc-1,12\n", [(2, "phone", "INVALID_PHONE")]),
    ("type,external_id,points,date\nearn,c-9,5,2025-01-01\n", [(2, "external_id", "UNKNOWN_MEMBER")]),
    ("type,external_id,points,date\nmember,c-1,,\nearn,c-1,5,\n", [(3, "date", "MISSING_VALUE")]),
    ("type,external_id,points,date\nmember,c-1,,\nearn,c-1,5,2099-01-01\n", [(3, "date", "FUTURE_DATE")]),
    ("type,external_id,points,date\nmember,c-1,,\nearn,c-1,5,yesterday\n", [(3, "date", "INVALID_DATE")]),
    ("type,external_id\npunch,c-1\n", [(2, "type", "INVALID_TYPE")]),
    ("external_id,reference\nc-1,a\u202eb\n", [(2, "reference", "UNSAFE_CHARACTER")]),
    ("", [(1, "", "EMPTY_FILE")]),
    ('external_id,reference\nc-1,"never closed\n', [(2, "", "MALFORMED_CSV")]),
]


@pytest.mark.parametrize(("content", "expected"), BAD_CASES, ids=[c[1][0][2] for c in BAD_CASES])
async def test_each_malformed_file_is_refused_by_line_and_nothing_is_written(
        db: Database, keys: NetworkKeys, settings: Settings, make_merchant: Any, write: Any, tmp_path: Path,
        content: str | bytes, expected: list[tuple[int, str, str]]) -> None:
    shop = (await make_merchant()).merchant
    before = await counts(db)
    result = await run(db, keys, settings, shop.id, write(content))
    assert result.status == "INVALID"
    assert [(e.line, e.column, e.code) for e in result.errors] == expected
    assert await counts(db) == before
    error_file = tmp_path / "errors.csv"
    write_error_file(result.errors, error_file)
    assert error_file.read_text().splitlines()[0] == "line,column,code,message"
    assert len(error_file.read_text().splitlines()) == 1 + len(expected)


async def test_a_contact_some_member_has_is_refused_with_its_line(db: Database, keys: NetworkKeys,
                                                                  settings: Settings, make_merchant: Any,
                                                                  write: Any) -> None:
    shop = (await make_merchant()).merchant
    await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="e", email="bob@example.com")
    before = await counts(db)
    result = await run(db, keys, settings, shop.id, write(GOOD))
    assert [(e.line, e.column, e.code) for e in result.errors] == [(3, "email", "CONTACT_ALREADY_ENROLLED")]
    assert await counts(db) == before


async def test_a_suspended_or_unknown_merchant_imports_nothing(db: Database, keys: NetworkKeys,
                                                               settings: Settings, write: Any) -> None:
    result = await run(db, keys, settings, 999, write(GOOD))
    assert [e.code for e in result.errors] == ["MERCHANT_NOT_FOUND"]
    assert (await counts(db))["members"] == 0


async def test_huge_files_and_lines_are_refused_before_reading_them(db: Database, keys: NetworkKeys,
                                                                    settings: Settings, make_merchant: Any,
                                                                    write: Any) -> None:
    shop = (await make_merchant()).merchant
    limits = Limits(max_bytes=2048, max_line_bytes=256, max_rows=3)
    huge = write(b"external_id\n" + b"x" * 10_000 + b"\n", "huge.csv")
    assert [e.code for e in (await run(db, keys, settings, shop.id, huge, limits=limits)).errors] == [
        "FILE_TOO_LARGE"]
    long_line = write(b"external_id\n" + b"x" * 1000 + b"\n", "long.csv")
    assert [e.code for e in (await run(db, keys, settings, shop.id, long_line, limits=limits)).errors] == [
        "LINE_TOO_LONG"]
    rows = write("external_id\n" + "".join(f"c{i}\n" for i in range(5)), "rows.csv")
    assert [e.code for e in (await run(db, keys, settings, shop.id, rows, limits=limits)).errors] == [
        "TOO_MANY_ROWS"]
    assert (await counts(db))["members"] == 0


async def test_a_failure_mid_load_leaves_nothing_half_written(db: Database, keys: NetworkKeys, settings: Settings,
                                                              make_merchant: Any, write: Any,
                                                              monkeypatch: Any) -> None:
    from coalition.portability import load

    shop = (await make_merchant()).merchant
    monkeypatch.setattr(load, "CHUNK", 1)
    calls = 0
    real = load._Plan.write

    async def failing(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the third chunk: two are written in the transaction already
            raise RuntimeError("the disk is full")
        await real(self, *args, **kwargs)

    monkeypatch.setattr(load._Plan, "write", failing)
    with pytest.raises(RuntimeError):
        await run(db, keys, settings, shop.id, write(GOOD))
    assert await counts(db) == {"members": 0, "entries": 0, "postings": 0, "lots": 0}


async def test_the_same_file_for_two_merchants_are_two_imports(db: Database, keys: NetworkKeys,
                                                               settings: Settings, make_merchant: Any,
                                                               write: Any) -> None:
    a, b = (await make_merchant("A")).merchant, (await make_merchant("B")).merchant
    content = "external_id,balance\nc-1,10\n"
    assert (await run(db, keys, settings, a.id, write(content))).status == "IMPORTED"
    assert (await run(db, keys, settings, b.id, write(content))).status == "IMPORTED"
    async with db.read() as conn:
        owners = sorted((await conn.execute(select(Member.enrolled_by_merchant_id))).scalars().all())
    assert owners == sorted([a.id, b.id])
    await consistent(db)


EFFECTIVE = """query($lid: String!) { member(loyaltyId: $lid) {
  transactions { edges { node { points createdAt effectiveAt } } } } }"""


async def test_the_api_shows_the_original_dates(db: Database, keys: NetworkKeys, settings: Settings, api: Any,
                                                make_merchant: Any, write: Any) -> None:
    shop = await make_merchant()
    assert (await run(db, keys, settings, shop.merchant.id, write(WITH_HISTORY))).status == "IMPORTED"
    async with db.read() as conn:
        lid = (await conn.execute(select(Member.loyalty_id))).scalar_one()
    edges = (await api.call(EFFECTIVE, {"lid": lid}, key=shop.api_key))["member"]["transactions"]["edges"]
    dates = sorted((e["node"]["points"], e["node"]["effectiveAt"][:10]) for e in edges)
    assert dates == [(5, NOW.date().isoformat()), (10, "2025-03-01"), (20, "2025-04-01")]


async def test_a_contact_enrolled_between_validation_and_load_aborts_the_whole_load(
        db: Database, keys: NetworkKeys, settings: Settings, make_merchant: Any, write: Any,
        monkeypatch: Any) -> None:
    from coalition.portability import service

    shop = (await make_merchant()).merchant
    real = service.load_file

    async def enroll_first(*args: Any, **kwargs: Any) -> Any:
        await enroll_member(db, keys, merchant_id=shop.id, idempotency_key="racer", email="bob@example.com")
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "load_file", enroll_first)
    result = await run(db, keys, settings, shop.id, write(GOOD))
    assert result.status == "INVALID" and [e.code for e in result.errors] == ["IMPORT_CONFLICT"]
    assert (await counts(db))["members"] == 1  # the racer only: nothing of the file
    await consistent(db)
