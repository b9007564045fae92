"""simulateSettlement through the real HTTP API: admin only, figures by hand, nothing written."""

from __future__ import annotations

import datetime as dt
from typing import Any

from coalition.auth.models import Role
from coalition.auth.service import create_api_key
from coalition.ledger.models import Entry, Posting
from coalition.settlement.models import NetworkPolicy, SettlementBatch

SIMULATE = """query($input: SimulateSettlementInput!) { simulateSettlement(input: $input) {
  periodStart periodEnd batch { seq }
  policy { version fundingModel reimbursementRate pointValueMinor }
  positions { merchant { name } netMinor currentNetMinor deltaMinor reimbursementsMinor }
  lines { issuer { name } redeemer { name } points amountMinor }
  transfers { payer { name } payee { name } amountMinor }
  simulated { networkIncomeMinor grossMinor netMinor nettingRatio }
  current { networkIncomeMinor } } }"""


TABLES = (Entry, Posting, SettlementBatch, NetworkPolicy)


async def test_an_admin_sees_what_a_lower_rate_would_do(api: Any, admin_key: str, shops: Any, keys: Any) -> None:
    s = shops
    await s.worked_example_activity()
    batch = (await s.settle()).batch
    before = await s.row_counts(*TABLES)
    variables = {"input": {"batchId": keys.global_ids.encode("SettlementBatch", batch.id),
                           "policy": {"reimbursementRate": "0.80"}}}
    result = (await api.call(SIMULATE, variables, key=admin_key))["simulateSettlement"]
    assert result["batch"] == {"seq": 1}
    assert result["policy"] == {"version": None, "fundingModel": "ISSUANCE", "reimbursementRate": "0.8",
                                "pointValueMinor": 1}
    assert {p["merchant"]["name"]: (p["netMinor"], p["currentNetMinor"], p["deltaMinor"])
            for p in result["positions"]} == {"Bakery": (-96, -96, 0), "Books": (14, 22, -8), "Cafe": (24, 27, -3)}
    assert (result["simulated"]["networkIncomeMinor"], result["current"]["networkIncomeMinor"]) == (58, 47)
    assert {(c["issuer"]["name"], c["redeemer"]["name"]): (c["points"], c["amountMinor"]) for c in result["lines"]} == {
        ("Bakery", "Cafe"): (30, 24), ("Bakery", "Books"): (70, 56), ("Books", "Books"): (10, 8),
        ("Books", "Bakery"): (5, 4)}
    assert {(t["payer"] and t["payer"]["name"], t["payee"] and t["payee"]["name"]): t["amountMinor"]
            for t in result["transfers"]} == {("Bakery", None): 96, (None, "Books"): 14, (None, "Cafe"): 24}
    assert await s.row_counts(*TABLES) == before


async def test_only_admins_and_only_good_input(api: Any, admin_key: str, shops: Any) -> None:
    s = shops
    await s.worked_example_activity()
    async with s.db.sessions.begin() as session:
        merchant = await create_api_key(session, Role.MERCHANT, merchant_id=s.a.id)
    s.clock.advance(minutes=1)
    period_end = s.clock().isoformat()  # the test clock is in the past of the real one
    good = {"input": {"periodEnd": period_end, "policy": {"fundingModel": "REDEMPTION"}}}
    refused = await api.call(SIMULATE, good, key=merchant, expect_errors=True)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    before = await s.row_counts(*TABLES)
    for policy, code in (({"reimbursementRate": "1.2"}, "INVALID_REIMBURSEMENT_RATE"),
                         ({"fundingModel": "BARTER"}, "INVALID_FUNDING_MODEL")):
        body = await api.call(SIMULATE, {"input": {"periodEnd": period_end, "policy": policy}}, key=admin_key,
                              expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == code
    body = await api.call(SIMULATE, {"input": {"policy": {}}}, key=admin_key, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_SIMULATION_WINDOW"
    body = await api.call(SIMULATE, {"input": {"batchId": "nonsense", "policy": {}}}, key=admin_key,
                          expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_ID"
    result = (await api.call(SIMULATE, good, key=admin_key))["simulateSettlement"]
    assert {p["merchant"]["name"]: p["netMinor"] for p in result["positions"]} == {
        "Bakery": -96, "Books": 58, "Cafe": 27}
    assert await s.row_counts(*TABLES) == before


async def test_the_what_if_report_page(api: Any, admin_key: str, shops: Any) -> None:
    s = shops
    await s.worked_example_activity()
    batch = (await s.settle()).batch
    before = await s.row_counts(*TABLES)
    auth = {"Authorization": f"Bearer {admin_key}"}
    page = await api.client.get(f"/admin/settlement/simulate.html?batch={batch.id}&reimbursementRate=0.80",
                                headers=auth)
    assert page.status_code == 200, page.text
    assert "What-if" in page.text and "Net now" in page.text and "reimbursement rate 0.8" in page.text
    books = page.text[page.text.index(f'data-merchant="{s.b.id}"'):].split("</tr>")[0]
    assert all(figure in books for figure in ("€0.14", "€0.22", "-€0.08")), books
    pdf = await api.client.get(f"/admin/settlement/simulate.pdf?batch={batch.id}&fundingModel=REDEMPTION",
                               headers=auth)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    bad = await api.client.get(f"/admin/settlement/simulate.html?batch={batch.id}&reimbursementRate=2",
                               headers=auth)
    assert (bad.status_code, bad.json()["errors"][0]["extensions"]["code"]) == (400, "INVALID_REIMBURSEMENT_RATE")
    # The console's form sends every field, the empty ones too.
    form = await api.client.get(f"/admin/settlement/simulate.html?batch={batch.id}&reimbursementRate=0.80"
                                "&fundingModel=&pointValueMinor=&breakageShare=", headers=auth)
    assert form.status_code == 200 and "0.14" in form.text
    index = await api.client.get("/admin/settlement", headers=auth)
    assert 'action="settlement/simulate.html"' in index.text
    assert "form-action 'self'" in index.headers["content-security-policy"]
    no_window = await api.client.get("/admin/settlement/simulate.html", headers=auth)
    assert no_window.status_code == 400
    assert no_window.json()["errors"][0]["extensions"]["code"] == "INVALID_SIMULATION_WINDOW"
    async with s.db.sessions.begin() as session:
        merchant = await create_api_key(session, Role.MERCHANT, merchant_id=s.b.id)
    refused = await api.client.get(f"/admin/settlement/simulate.html?batch={batch.id}",
                                   headers={"Authorization": f"Bearer {merchant}"})
    assert refused.status_code == 403
    assert await s.row_counts(*TABLES) == before


async def test_the_what_if_page_for_the_next_period(api: Any, admin_key: str, shops: Any) -> None:
    s = shops
    await s.worked_example_activity()
    s.clock.advance(minutes=1)
    auth = {"Authorization": f"Bearer {admin_key}"}
    end = s.clock().astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()  # "+01:00", sent unescaped
    page = await api.client.get(f"/admin/settlement/simulate.html?periodEnd={end}&fundingModel=REDEMPTION",
                                headers=auth)
    assert page.status_code == 200, page.text
    assert "REDEMPTION" in page.text and "0.58" in page.text  # Books under REDEMPTION (worked example)
    bad = await api.client.get("/admin/settlement/simulate.html?periodEnd=tomorrow", headers=auth)
    assert (bad.status_code, bad.json()["errors"][0]["extensions"]["code"]) == (400, "INVALID_PERIOD_END")
