"""reconcilePosExport through the real HTTP API: who may reconcile what, and that nothing is written."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from coalition.db import Database
from coalition.ledger.models import Allocation, Entry, Hold, Lot, Posting

ONBOARD = """mutation($name: String!) { onboardMerchant(input: {name: $name, earnRatePointsPerUnit: 1}) {
  merchant { id } apiKey } }"""
ENROLL = """mutation($key: String!) { enrollMember(input: {idempotencyKey: $key}) { member { loyaltyId } } }"""
EARN = """mutation($lid: String!, $amount: Int!, $key: String!, $ref: String) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key, reference: $ref}) {
    transaction { id } userErrors { code } } }"""
RECONCILE = """mutation($csv: String!, $merchant: ID, $from: DateTime, $to: DateTime, $tolerance: Int) {
  reconcilePosExport(input: {csv: $csv, merchantId: $merchant, from: $from, to: $to, toleranceSeconds: $tolerance}) {
    report {
      merchant { name } from to rowsRead rowErrorCount
      matched { line reference posPoints ledgerPoints transaction { id merchant { name } } matchedBy }
      mismatched { line reference differences posAmountMinor ledgerAmountMinor }
      missingInCoalition { line reference transaction { id } }
      missingInPos { line reference kind ledgerPoints transaction { id } }
      totals { matched { count posPoints ledgerPoints posAmountMinor ledgerAmountMinor }
               mismatched { count } missingInCoalition { count posPoints } missingInPos { count ledgerPoints } }
      rowErrors { line column code message }
    }
    userErrors { field code message } } }"""

CSV = """reference,time,amount_minor,points
R-1,{t},2350,23
R-2,{t},1100,10
R-9,{t},900,9
R-3,{t},1000,ten
"""


async def table_counts(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        return {t.__tablename__: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (Entry, Posting, Lot, Allocation, Hold)}


async def network(api: Any, admin_key: str) -> dict[str, Any]:
    bakery = (await api.call(ONBOARD, {"name": "Bakery"}, key=admin_key))["onboardMerchant"]
    books = (await api.call(ONBOARD, {"name": "Books"}, key=admin_key))["onboardMerchant"]
    lid = (await api.call(ENROLL, {"key": "e1"}, key=bakery["apiKey"]))["enrollMember"]["member"]["loyaltyId"]
    for key, amount, ref in ((bakery["apiKey"], 2350, "R-1"), (bakery["apiKey"], 1000, "R-2"),
                             (bakery["apiKey"], 500, "R-4"), (books["apiKey"], 900, "R-9")):
        earned = (await api.call(EARN, {"lid": lid, "amount": amount, "key": ref, "ref": ref}, key=key))["earnPoints"]
        assert earned["userErrors"] == []
    return {"bakery": bakery, "books": books}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def pos_file() -> str:
    return CSV.format(t=now().isoformat())


async def test_a_merchant_reconciles_its_own_transactions(api: Any, admin_key: str, db: Database) -> None:
    shops = await network(api, admin_key)
    before = await table_counts(db)
    # The file's own span is one instant; the window around it makes R-4, earned earlier, count as missing.
    window = {"from": (now() - dt.timedelta(hours=1)).isoformat(), "to": (now() + dt.timedelta(hours=1)).isoformat()}
    result = (await api.call(RECONCILE, {"csv": pos_file(), **window}, key=shops["bakery"]["apiKey"]))
    result = result["reconcilePosExport"]
    assert result["userErrors"] == []
    report = result["report"]
    assert report["merchant"] == {"name": "Bakery"}
    assert report["rowsRead"] == 4
    assert [(m["line"], m["reference"], m["transaction"]["merchant"]["name"], m["matchedBy"])
            for m in report["matched"]] == [(2, "R-1", "Bakery", "REFERENCE")]
    assert report["mismatched"] == [{"line": 3, "reference": "R-2", "differences": ["AMOUNT"],
                                     "posAmountMinor": 1100, "ledgerAmountMinor": 1000}]
    # The bookshop's R-9 is neither matched nor revealed.
    assert report["missingInCoalition"] == [{"line": 4, "reference": "R-9", "transaction": None}]
    [missing] = report["missingInPos"]
    assert (missing["line"], missing["reference"], missing["kind"], missing["ledgerPoints"]) == (None, "R-4", "EARN", 5)
    assert report["rowErrors"] == [{"line": 5, "column": "points", "code": "INVALID_POINTS",
                                    "message": report["rowErrors"][0]["message"]}]
    assert report["rowErrorCount"] == 1
    assert report["totals"] == {
        "matched": {"count": 1, "posPoints": 23, "ledgerPoints": 23, "posAmountMinor": 2350, "ledgerAmountMinor": 2350},
        "mismatched": {"count": 1}, "missingInCoalition": {"count": 1, "posPoints": 9},
        "missingInPos": {"count": 1, "ledgerPoints": 5},
    }
    assert await table_counts(db) == before


async def test_who_may_reconcile_whom(api: Any, admin_key: str, db: Database) -> None:
    shops = await network(api, admin_key)
    bakery_id = shops["bakery"]["merchant"]["id"]
    before = await table_counts(db)
    # An admin names the merchant, and sees the same as the merchant would.
    as_admin = (await api.call(RECONCILE, {"csv": pos_file(), "merchant": bakery_id}, key=admin_key))
    assert as_admin["reconcilePosExport"]["report"]["matched"][0]["reference"] == "R-1"
    without = (await api.call(RECONCILE, {"csv": pos_file()}, key=admin_key))["reconcilePosExport"]
    assert (without["report"], [e["code"] for e in without["userErrors"]]) == (None, ["MERCHANT_REQUIRED"])
    # The bookshop may not ask for the bakery's ledger.
    foreign = await api.call(RECONCILE, {"csv": pos_file(), "merchant": bakery_id}, key=shops["books"]["apiKey"],
                             expect_errors=True)
    assert foreign["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert foreign["data"] is None
    anonymous = await api.call(RECONCILE, {"csv": pos_file()}, expect_errors=True)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await table_counts(db) == before


async def test_unusable_input_is_a_user_error(api: Any, admin_key: str) -> None:
    shops = await network(api, admin_key)
    key = shops["bakery"]["apiKey"]
    no_header = (await api.call(RECONCILE, {"csv": "R-1,2026-01-05T12:00:00Z,1,1\n"}, key=key))["reconcilePosExport"]
    assert no_header["report"] is None
    assert no_header["userErrors"][0]["code"] == "CSV_MISSING_COLUMNS"
    assert no_header["userErrors"][0]["field"] == ["input", "csv"]
    window = (await api.call(RECONCILE, {"csv": pos_file(), "from": "2026-02-01T00:00:00Z",
                                         "to": "2026-01-01T00:00:00Z"}, key=key))["reconcilePosExport"]
    assert [(e["field"], e["code"]) for e in window["userErrors"]] == [(["input", "from"], "INVALID_WINDOW")]
    bad_id = (await api.call(RECONCILE, {"csv": pos_file(), "merchant": "nonsense"}, key=key))["reconcilePosExport"]
    assert bad_id["userErrors"][0]["code"] == "INVALID_ID"
    # A DateTime without an offset is refused by the scalar itself, before the mutation runs.
    naive = await api.call(RECONCILE, {"csv": pos_file(), "from": "2026-01-01T00:00:00"}, key=key, expect_errors=True)
    assert [e["extensions"]["code"] for e in naive["errors"]] == ["BAD_USER_INPUT"] and "data" not in naive
    negative = (await api.call(RECONCILE, {"csv": pos_file(), "tolerance": -1}, key=key))["reconcilePosExport"]
    assert [(e["field"], e["code"]) for e in negative["userErrors"]] == [(["input", "toleranceSeconds"],
                                                                          "INVALID_TOLERANCE")]


async def test_the_tolerance_decides_when_times_differ(api: Any, admin_key: str) -> None:
    shops = await network(api, admin_key)
    late = CSV.format(t=(now() + dt.timedelta(minutes=10)).isoformat())
    strict = (await api.call(RECONCILE, {"csv": late}, key=shops["bakery"]["apiKey"]))["reconcilePosExport"]
    assert [(m["reference"], m["differences"]) for m in strict["report"]["mismatched"]] == [
        ("R-1", ["TIME"]), ("R-2", ["AMOUNT", "TIME"])]
    lenient = (await api.call(RECONCILE, {"csv": late, "tolerance": 3600}, key=shops["bakery"]["apiKey"]))
    assert [m["reference"] for m in lenient["reconcilePosExport"]["report"]["matched"]] == ["R-1"]


async def test_an_oversized_file_is_refused_before_it_is_read(api: Any, admin_key: str) -> None:
    shops = await network(api, admin_key)
    huge = "reference,time,amount_minor,points\n" + "R-1,2026-01-05T12:00:00Z,100,1\n" * 20_000
    response = await api.client.post("/graphql", json={"query": RECONCILE, "variables": {"csv": huge}},
                                     headers={"Authorization": f"Bearer {shops['bakery']['apiKey']}"})
    assert response.status_code == 413
