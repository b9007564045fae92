"""The import's fast paths answer as the full checks do.

- The reader's fast row check accepts exactly the rows the full checks accept, with the same
  values, and leaves every other row (and its error messages) to them.
- The load writes each member once with its final balance (opening balance + history summed
  during validation) and gives earn rows their member's id without a query.
- ``NetworkKeys.encrypt_many`` makes tokens ``decrypt`` and the Fernet library read.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import random
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import func, select

from coalition.config import Settings
from coalition.crypto import NetworkKeys, _derive
from coalition.db import Database
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Entry, Lot, Posting
from coalition.members.models import Member
from coalition.portability.reader import ImportReader, Limits
from coalition.portability.service import import_members, limits_from

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
LIMITS = Limits(max_bytes=1 << 24, max_line_bytes=64 * 1024, max_rows=100_000)

TRICKY = (
    "\ufeffType, External_ID ,email,phone,balance,points,amount_minor,date,reference\n"
    "member,m1,Ann@Example.COM,+44 (0) 7700-900.123,0120,,,2025-06-01,\"opening, with comma\"\n"
    "MEMBER ,m2,,,,,,,\n"
    "earn,m1,,,,5,0,2025-03-01T09:30:00Z,visit\n"
    "earn,m1,,,,7,,2025-03-02 10:00:00+02:00,\n"
    " earn ,m2,,,,1,12,2025-01-01T00:00:00,\"two, quoted\"\"\"\n"
    "earn,m2,,,,1,,2025-01-01,\"two\nlines\"\n"  # UNSAFE_CHARACTER: a line break in a field
    "member,m3,zoë@example.com,,5,,,,café\n"  # non-ASCII: the full checks take it, and accept it
    "member,m4,,0033612345678,3,,,,\n"
    "member,m5,bad-address,,1,,,,\n"  # INVALID_EMAIL
    "member,m6,,12,1,,,,\n"  # INVALID_PHONE
    "member,m7,,,-5,,,,\n"  # NEGATIVE_BALANCE
    "member,m8,,,+5,,,,\n"  # INVALID_NUMBER
    "member,m9,,,99999999999999999999,,,,\n"  # OUT_OF_RANGE
    "member,m10,,,1" + "0" * 5000 + ",,,,\n"  # OUT_OF_RANGE (and no crash: int() refuses 4,300 digits)
    "member,m1,,,1,,,,\n"  # DUPLICATE_EXTERNAL_ID
    "member,m11,ann@example.com,,1,,,,\n"  # DUPLICATE_CONTACT
    "earn,m12,,,,3,,2025-01-01,\n"  # UNKNOWN_MEMBER
    "earn,m2,,,,0,,2025-01-01,\n"  # OUT_OF_RANGE: points >= 1
    "earn,m2,,,,4,,,\n"  # MISSING_VALUE: date
    "earn,m2,,,,4,,2099-01-01,\n"  # FUTURE_DATE
    "earn,m2,,,,4,,01/02/2025,\n"  # INVALID_DATE
    "earn,m2,x@example.com,,,4,,2025-01-01,\n"  # NOT_FOR_EARN_ROWS
    "member,m13,,,1,4,,,\n"  # NOT_FOR_MEMBER_ROWS
    "punch,m14,,,1,,,,\n"  # INVALID_TYPE
    "member,m15,,,1,,,,a\u202eb\n"  # UNSAFE_CHARACTER
    "member,m16,,,1,,,,a\tb\n"  # UNSAFE_CHARACTER (a tab)
    "member,,,,1,,,,\n"  # INVALID_EXTERNAL_ID
    "member," + "x" * 129 + ",,,1,,,,\n"  # INVALID_EXTERNAL_ID
    "member,m17,,,1,,,," + "r" * 129 + "\n"  # INVALID_REFERENCE
    "member,m18,,,1\n"  # WRONG_FIELD_COUNT
    ",,,,,,,,\n"  # blank
    "member,m19,,,1,,,2025-13-01,\n"  # INVALID_DATE
    "member,m20,, 07700 900124 ,1,,,,\n"
).encode() + b"member,m21,,,1,,,,caf\xe9\n" + b"member,m22,,,2,,,2024-02-29,\n"  # INVALID_ENCODING; a leap day


def read(content: bytes, *, fast: bool) -> tuple[list[Any], Any]:
    reader = ImportReader(io.BytesIO(content), LIMITS, now=NOW, fast=fast)
    return list(reader.records()), reader.scan


def assert_same(content: bytes) -> list[Any]:
    fast_records, fast_scan = read(content, fast=True)
    slow_records, slow_scan = read(content, fast=False)
    assert fast_records == slow_records
    assert fast_scan == slow_scan  # the counts, the digest and every error (line, column, code, message)
    return fast_records


def test_the_fast_check_accepts_and_refuses_what_the_full_checks_do_on_a_tricky_file() -> None:
    records = assert_same(TRICKY)
    _, scan = read(TRICKY, fast=True)
    by_line = {r.line: r for r in records}
    assert by_line[2].email == "ann@example.com" and by_line[2].phone == "+4407700900123"
    assert by_line[2].points == 120 and by_line[2].reference == "opening, with comma"
    assert by_line[5].date == dt.datetime(2025, 3, 2, 8, 0, tzinfo=dt.UTC)
    assert by_line[6].reference == 'two, quoted"' and by_line[6].amount_minor == 12
    assert by_line[9].email == "zoë@example.com" and by_line[9].reference == "café"
    assert by_line[10].phone == "+0033612345678" and by_line[35].phone == "+07700900124"
    assert by_line[37].date == dt.datetime(2024, 2, 29, tzinfo=dt.UTC)
    assert sorted(by_line) == [2, 3, 4, 5, 6, 9, 10, 17, 18, 19, 35, 37]  # 17-19: the whole-file checks' errors
    assert sorted({e.code for e in scan.errors}) == sorted({
        "INVALID_EMAIL", "INVALID_PHONE", "NEGATIVE_BALANCE", "INVALID_NUMBER", "OUT_OF_RANGE",
        "DUPLICATE_EXTERNAL_ID", "DUPLICATE_CONTACT", "UNKNOWN_MEMBER", "MISSING_VALUE", "FUTURE_DATE",
        "INVALID_DATE", "NOT_FOR_EARN_ROWS", "NOT_FOR_MEMBER_ROWS", "INVALID_TYPE", "UNSAFE_CHARACTER",
        "INVALID_EXTERNAL_ID", "INVALID_REFERENCE", "WRONG_FIELD_COUNT", "INVALID_ENCODING"})


def test_the_fast_check_agrees_with_the_full_checks_on_random_rows() -> None:
    rng = random.Random(17)
    pick = {
        "type": ["", "member", "earn", "Earn", " member ", "punch", "EARN "],
        "external_id": ["c1", "c2", "c3", " c1 ", "", "ü1", "c\x00", "x" * 128, "x" * 129],
        "email": ["", "a@example.com", "A@EXAMPLE.com ", "bad", "a@b", "a @example.com", "é@example.com"],
        "phone": ["", "+447700900123", "07700 900 123", "12", "+1 (555) 010-9999", "++4477", "٣٣٣٣٣٣٣٣"],
        "balance": ["", "0", "5", "-5", "+5", "007", "1e3", " 9 ", "1000000000000", "1000000000001", "٣"],
        "points": ["", "1", "0", "-1", "12", "x"],
        "amount_minor": ["", "0", "100", "-1", "1.5"],
        "date": ["", "2025-01-01", "2025-01-01T10:00:00Z", "2025-01-01 10:00", "2025-01-01T10:00:00+05:00",
                 "2099-01-01", "yesterday", "2025-02-30", "20250101", " 2025-01-02 "],
        "reference": ["", "ref", "a,b", "a\"b", "r" * 129, "\u2066x", "x\ny"],
    }
    columns = list(pick)
    for _ in range(20):
        rng.shuffle(columns)
        lines = [",".join(columns)]
        for _ in range(60):
            fields = []
            for name in columns:
                value = rng.choice(pick[name])
                fields.append('"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n') else value)
            lines.append(",".join(fields))
        assert_same(("\n".join(lines) + "\n").encode())


async def test_balances_and_ids_are_right_across_chunks(db: Database, keys: NetworkKeys, settings: Settings,
                                                        make_merchant: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """Members written once with their final balance; earn rows find their member in any chunk."""
    from coalition.portability import load

    monkeypatch.setattr(load, "CHUNK", 3)  # members and earn rows over many chunks
    shop = (await make_merchant()).merchant
    rng = random.Random(5)
    rows = ["type,external_id,balance,points,date,email"]
    expected: dict[str, int] = {}
    for i in range(10):
        opening = rng.choice([0, 0, 7, 100])
        expected[f"k{i}"] = opening
        rows.append(f"member,k{i},{opening},,2025-01-01,k{i}@example.com")
    for _ in range(25):  # history before and after its member, several per member, some with none
        i = rng.choice([0, 1, 2, 5, 9])
        points = rng.randint(1, 50)
        expected[f"k{i}"] += points
        rows.insert(rng.randint(1, len(rows)), f"earn,k{i},,{points},2025-03-01T10:00:00Z,")
    path = tmp_path / "members.csv"
    path.write_text("\n".join(rows) + "\n")
    result = await import_members(db, keys, merchant_id=shop.id, path=path, limits=limits_from(settings),
                                  expiry_days=365, now=NOW)
    assert result.status == "IMPORTED", result.errors
    async with db.read() as conn:
        members = (await conn.execute(select(Member.id, Member.email_index, Member.balance,
                                             Member.lifetime_points))).all()
        found = {index: (balance, lifetime) for _, index, balance, lifetime in members}
        assert found == {keys.blind_index("email", f"{k}@example.com"): (v, v) for k, v in expected.items()}
        per_member = dict((await conn.execute(select(Posting.account_id, func.sum(Posting.points)).where(
            Posting.account == "MEMBER").group_by(Posting.account_id))).all())
        assert {mid: int(per_member.get(mid, 0)) for mid, _, balance, _ in members} == {
            mid: balance for mid, _, balance, _ in members}
        lots = dict((await conn.execute(select(Lot.member_id, func.sum(Lot.remaining)).group_by(
            Lot.member_id))).all())
        assert {mid: int(lots.get(mid, 0)) for mid, *_ in members} == {mid: b for mid, _, b, _ in members}
        assert (await conn.execute(select(func.count()).select_from(Entry))).scalar_one() == result.entries_created
        await assert_ledger_consistent(conn)


def test_encrypt_many_makes_fernet_tokens() -> None:
    keys = NetworkKeys(b"a master secret for this test")
    values = ["", "a", "ann@example.com", "x" * 15, "x" * 16, "x" * 17, "zoë@example.com", "+447700900123",
              "y" * 100]
    tokens = keys.encrypt_many(values)
    assert [keys.decrypt(t) for t in tokens] == values
    library = Fernet(base64.urlsafe_b64encode(_derive(b"a master secret for this test", b"contact-encryption")))
    assert [library.decrypt(t).decode() for t in tokens] == values  # the HMAC, the CBC chain and the padding
    ivs = {base64.urlsafe_b64decode(t)[9:25] for t in tokens}
    assert len(ivs) == len(values)  # a fresh IV per value
    assert keys.encrypt_many([]) == []
