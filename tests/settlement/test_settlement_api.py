"""Settlement through the real HTTP API: policy, runSettlement, who sees which positions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import func, select

from coalition.settlement.models import NetworkPolicy, SettlementBatch, SettlementLine, SettlementPosition
from coalition.settlement.statements import verify_export

ONBOARD = """mutation($name: String!) { onboardMerchant(input: {name: $name}) {
  merchant { id } apiKey userErrors { code } } }"""
ENROLL = """mutation($key: String!) { enrollMember(input: {idempotencyKey: $key}) {
  member { loyaltyId } userErrors { code } } }"""
EARN = """mutation($lid: String!, $amount: Int!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key}) {
    transaction { id } userErrors { code } } }"""
REDEEM = """mutation($lid: String!, $points: Int!, $key: String!) {
  redeemPoints(input: {loyaltyId: $lid, points: $points, idempotencyKey: $key}) {
    transaction { id } userErrors { code } } }"""
SET_POLICY = """mutation($input: SetNetworkPolicyInput!) { setNetworkPolicy(input: $input) {
  policy { version pointValueMinor fundingModel reimbursementRate breakageShare period timezone }
  userErrors { field code message } } }"""
POLICY = "{ networkPolicy { version pointValueMinor fundingModel reimbursementRate } }"
RUN = """mutation($end: DateTime!, $key: String!) { runSettlement(input: {periodEnd: $end, idempotencyKey: $key}) {
  batch { id status digest signature grossMinor netMinor networkIncomeMinor nettingRatio residueMinor
          lines { issuer { id } redeemer { id } points amountMinor }
          positions { merchant { id } netMinor }
          transfers { payer { id } payee { id } amountMinor } }
  userErrors { field code message } } }"""
BATCHES = """{ settlementBatches(first: 10) { edges { node { id digest signature statement statementVersion
  merchantRoot previousDigest lines { issuer { id } redeemer { id } points } positions { merchant { id } netMinor }
  transfers { amountMinor } bilateralTransfers { amountMinor } statementExport
  positions { statement statementSha256 } } } } }"""
NODE = """query($id: ID!) { node(id: $id) { __typename ... on SettlementBatch { seq } } }"""
NETWORK_KEY = "{ network { publicKey } }"


async def _network(api: Any, admin_key: str) -> dict[str, Any]:
    shops = {}
    for name in ("A", "B", "C"):
        made = (await api.call(ONBOARD, {"name": name}, key=admin_key))["onboardMerchant"]
        shops[name] = made
    lid = (await api.call(ENROLL, {"key": "e1"}, key=shops["A"]["apiKey"]))["enrollMember"]["member"]["loyaltyId"]
    await api.call(EARN, {"lid": lid, "amount": 10000, "key": "k1"}, key=shops["A"]["apiKey"])  # 100 points
    await api.call(REDEEM, {"lid": lid, "points": 40, "key": "k2"}, key=shops["B"]["apiKey"])
    await api.call(REDEEM, {"lid": lid, "points": 10, "key": "k3"}, key=shops["C"]["apiKey"])
    return shops


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


async def test_admin_sets_the_policy_and_runs_a_settlement(api: Any, admin_key: str, db: Any) -> None:
    shops = await _network(api, admin_key)
    policy = (await api.call(SET_POLICY, {"input": {
        "pointValueMinor": 2, "fundingModel": "REDEMPTION", "reimbursementRate": "0.9",
        "effectiveFrom": "2000-01-01T00:00:00+00:00"}}, key=admin_key))["setNetworkPolicy"]
    assert policy["userErrors"] == []
    assert policy["policy"]["fundingModel"] == "REDEMPTION" and policy["policy"]["reimbursementRate"] == "0.9"
    assert (await api.call(POLICY))["networkPolicy"]["pointValueMinor"] == 2  # anyone reads it

    end = _now()
    run = (await api.call(RUN, {"end": end, "key": "s1"}, key=admin_key))["runSettlement"]
    assert run["userErrors"] == []
    batch = run["batch"]
    assert batch["status"] == "CLOSED"
    net = {p["merchant"]["id"]: int(p["netMinor"]) for p in batch["positions"]}
    a, b, c = (shops[n]["merchant"]["id"] for n in "ABC")
    # REDEMPTION, 2 per point, 0.9: A pays 50 x 2 = 100; B gets 40 x 2 x 0.9 = 72; C gets 18.
    assert net == {a: -100, b: 72, c: 18}
    assert int(batch["networkIncomeMinor"]) == 10
    assert sorted(int(t["amountMinor"]) for t in batch["transfers"]) == [18, 72, 100]

    again = (await api.call(RUN, {"end": end, "key": "s1"}, key=admin_key))["runSettlement"]
    assert again == run  # a retry returns the same batch
    assert (await api.call(NODE, {"id": batch["id"]}, key=admin_key))["node"] == {
        "__typename": "SettlementBatch", "seq": 1}


async def test_a_merchant_sees_only_its_own_position_and_can_verify_its_statement(api: Any, admin_key: str) -> None:
    shops = await _network(api, admin_key)
    await api.call(RUN, {"end": _now(), "key": "s1"}, key=admin_key)
    b = shops["B"]["merchant"]["id"]
    page = (await api.call(BATCHES, key=shops["B"]["apiKey"]))["settlementBatches"]["edges"]
    node = page[0]["node"]
    assert [p["merchant"]["id"] for p in node["positions"]] == [b]
    assert all(b in (line["redeemer"]["id"], (line["issuer"] or {}).get("id")) for line in node["lines"])
    assert len(node["transfers"]) == 1
    document = json.loads(node["statementExport"])
    public_key = (await api.call(NETWORK_KEY))["network"]["publicKey"]
    verified = verify_export(document, public_key)
    assert [m["figures"]["netMinor"] for m in verified.merchants] == [node["positions"][0]["netMinor"]]
    assert "merchantStatements" not in document  # never another merchant's statement

    assert verify_export(document, public_key, merchant_id=int(json.loads(document["merchantStatement"])
                                                                ["merchantId"])).version == 2
    assert node["statementVersion"] == 2 and node["merchantRoot"] == json.loads(node["statement"])["merchantRoot"]
    assert document["nonce"] and document["proof"]

    admin = (await api.call(BATCHES, key=admin_key))["settlementBatches"]["edges"][0]["node"]
    assert len(admin["positions"]) == 3
    assert len(verify_export(json.loads(admin["statementExport"]), public_key).merchants) == 3
    # Nothing B reads holds the hash of another merchant's statement (issue 13, item 4: it could be guessed).
    readable = json.dumps(page)
    others = [p["statement"] for p in admin["positions"] if p["statement"] != node["positions"][0]["statement"]]
    assert len(others) == 2
    for statement in others:
        assert hashlib.sha256(statement.encode()).hexdigest() not in readable


async def test_members_and_anonymous_callers_cannot_read_batches(api: Any, admin_key: str) -> None:
    body = await api.call(BATCHES, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bad_input_is_a_user_error_and_changes_nothing(api: Any, admin_key: str, db: Any, keys: Any) -> None:
    shops = await _network(api, admin_key)

    async def counts() -> tuple[int, ...]:
        async with db.read() as conn:
            return tuple([(await conn.execute(select(func.count()).select_from(t))).scalar_one()
                          for t in (NetworkPolicy, SettlementBatch, SettlementLine, SettlementPosition)])

    before = await counts()
    for bad, code in [({"pointValueMinor": -1}, "INVALID_POINT_VALUE"),
                      ({"reimbursementRate": "1.5"}, "INVALID_REIMBURSEMENT_RATE"),
                      ({"reimbursementRate": "abc"}, "INVALID_REIMBURSEMENT_RATE"),
                      ({"breakageShare": "-0.1"}, "INVALID_BREAKAGE_SHARE"),
                      ({"fundingModel": "BARTER"}, "INVALID_FUNDING_MODEL"),
                      ({"period": "HOURLY"}, "INVALID_PERIOD"),
                      ({"timezone": "Mars/Olympus"}, "INVALID_TIMEZONE")]:
        errors = (await api.call(SET_POLICY, {"input": bad}, key=admin_key))["setNetworkPolicy"]["userErrors"]
        assert [e["code"] for e in errors] == [code], bad
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    errors = (await api.call(RUN, {"end": future, "key": "s1"}, key=admin_key))["runSettlement"]["userErrors"]
    assert [e["code"] for e in errors] == ["PERIOD_END_IN_FUTURE"]
    errors = (await api.call(RUN, {"end": _now(), "key": ""}, key=admin_key))["runSettlement"]["userErrors"]
    assert [e["code"] for e in errors] == ["INVALID_IDEMPOTENCY_KEY"]
    assert await counts() == before

    first_end = _now()
    await api.call(RUN, {"end": first_end, "key": "s1"}, key=admin_key)
    before = await counts()
    errors = (await api.call(RUN, {"end": "2001-01-01T00:00:00+00:00", "key": "s2"},
                             key=admin_key))["runSettlement"]["userErrors"]
    assert [e["code"] for e in errors] == ["PERIOD_END_NOT_AFTER_LAST_BATCH"]
    errors = (await api.call(RUN, {"end": _now(), "key": "s1"}, key=admin_key))["runSettlement"]["userErrors"]
    assert [e["code"] for e in errors] == ["IDEMPOTENCY_KEY_CONFLICT"]
    errors = (await api.call(SET_POLICY, {"input": {"effectiveFrom": "2001-01-01T00:00:00+00:00"}},
                             key=admin_key))["setNetworkPolicy"]["userErrors"]
    assert [e["code"] for e in errors] == ["INVALID_EFFECTIVE_FROM"]
    assert await counts() == before

    denied = await api.call(RUN, {"end": _now(), "key": "s3"}, key=shops["A"]["apiKey"], expect_errors=True)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unknown = await api.call(NODE, {"id": keys.global_ids.encode("SettlementBatch", 999)}, key=admin_key)
    assert unknown["node"] is None
    guessed = await api.call(NODE, {"id": "U2V0dGxlbWVudEJhdGNoOjE="}, key=admin_key, expect_errors=True)  # base64
    assert guessed["errors"][0]["extensions"]["code"] == "INVALID_ID"  # of "SettlementBatch:1": not an ID any more
