"""The POS flows through the real HTTP API: enroll at A, earn at A, redeem or hold at B."""

from __future__ import annotations

import re
from typing import Any

import pytest
from member_access import claim_over_api
from sqlalchemy import func, select

from coalition.ledger import fastpath
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Entry

ONBOARD = """mutation($name: String!, $rate: Int) {
  onboardMerchant(input: {name: $name, earnRatePointsPerUnit: $rate}) {
    merchant { id name status earnRatePointsPerUnit } apiKey userErrors { field code message } } }"""
ENROLL = """mutation($key: String!, $email: String, $ref: String) {
  enrollMember(input: {idempotencyKey: $key, email: $email, referralCode: $ref}) {
    member { id loyaltyId referralCode balance heldPoints tier } memberToken claimCode qrCode
    userErrors { field code message } } }"""
EARN = """mutation($lid: String!, $amount: Int!, $key: String!, $ref: String) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key, reference: $ref}) {
    transaction { id kind points reference merchant { name } member { loyaltyId } }
    member { balance heldPoints } userErrors { field code message } } }"""
REDEEM = """mutation($lid: String!, $points: Int!, $key: String!) {
  redeemPoints(input: {loyaltyId: $lid, points: $points, idempotencyKey: $key}) {
    transaction { id kind points } member { balance } userErrors { field code message } } }"""
AUTHORIZE = """mutation($lid: String!, $points: Int!, $key: String!, $exp: Int) {
  authorizeRedemption(input: {loyaltyId: $lid, points: $points, idempotencyKey: $key, expiresInSeconds: $exp}) {
    transaction { id kind points } hold { id status points expiresAt } member { balance heldPoints }
    userErrors { field code message } } }"""
CAPTURE = """mutation($hold: ID!, $points: Int, $key: String!) {
  captureRedemption(input: {holdId: $hold, points: $points, idempotencyKey: $key}) {
    transaction { kind points } hold { status capturedPoints } member { balance heldPoints }
    userErrors { field code message } } }"""
VOID = """mutation($hold: ID!, $key: String!) {
  voidRedemption(input: {holdId: $hold, idempotencyKey: $key}) {
    hold { status } member { balance heldPoints } userErrors { field code message } } }"""
REVERSE = """mutation($id: ID!, $key: String!) {
  reverseTransaction(input: {transactionId: $id, idempotencyKey: $key, reason: "refund"}) {
    transaction { kind points reverses { id } } member { balance owedPoints } userErrors { field code message } } }"""
MEMBER = """query($lid: String!) { member(loyaltyId: $lid) {
  balance transactions(first: 50) { edges { node { kind points merchant { name } } } pageInfo { hasNextPage } } } }"""
VIEWER = """{ viewer { __typename
  ... on MemberViewer { member { loyaltyId balance heldPoints tier email
        transactions { edges { node { kind points merchant { name } } } } } }
  ... on MerchantViewer { merchant { name } }
  ... on AdminViewer { network { name currency publicKey } } } }"""
NODE = """query($id: ID!) { node(id: $id) { __typename id ... on Transaction { points } } }"""


async def setup_network(api: Any, admin_key: str) -> dict[str, Any]:
    a = (await api.call(ONBOARD, {"name": "Bakery", "rate": 2}, key=admin_key))["onboardMerchant"]
    b = (await api.call(ONBOARD, {"name": "Books", "rate": 1}, key=admin_key))["onboardMerchant"]
    enrolled = (await api.call(ENROLL, {"key": "e-1", "email": "ana@example.com"}, key=a["apiKey"]))["enrollMember"]
    assert enrolled["userErrors"] == [] and enrolled["memberToken"] is None
    # The customer claims the token; the merchant never had it.
    enrolled["memberToken"] = await claim_over_api(api, enrolled["claimCode"])
    return {"a": a["apiKey"], "b": b["apiKey"], "member": enrolled}


async def test_earn_at_one_partner_and_redeem_at_another(api: Any, admin_key: str, db: Any) -> None:
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]

    variables = {"lid": lid, "amount": 12_345, "key": "k1", "ref": "R-1"}
    earned = (await api.call(EARN, variables, key=net["a"]))["earnPoints"]
    assert earned["userErrors"] == []
    assert earned["transaction"]["points"] == 246  # 123.45 EUR at 2 points per unit, rounded down
    assert earned["transaction"]["merchant"]["name"] == "Bakery"
    redeemed = (await api.call(REDEEM, {"lid": lid, "points": 100, "key": "k1"}, key=net["b"]))["redeemPoints"]
    assert redeemed["userErrors"] == []
    assert redeemed["member"]["balance"] == 146
    assert redeemed["transaction"]["points"] == -100

    # The merchant sees the balance and only its own transactions with the member.
    seen_by_b = (await api.call(MEMBER, {"lid": lid}, key=net["b"]))["member"]
    assert seen_by_b["balance"] == 146
    assert [e["node"]["merchant"]["name"] for e in seen_by_b["transactions"]["edges"]] == ["Books"]
    # The member sees everything across the network.
    mine = (await api.call(VIEWER, key=net["member"]["memberToken"]))["viewer"]["member"]
    assert mine["email"] == "ana@example.com"
    assert sorted(e["node"]["merchant"]["name"] for e in mine["transactions"]["edges"]) == ["Bakery", "Books"]
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


async def test_retry_returns_the_original_and_a_changed_retry_conflicts(api: Any, admin_key: str, db: Any) -> None:
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    first = (await api.call(EARN, {"lid": lid, "amount": 1000, "key": "same"}, key=net["a"]))["earnPoints"]
    again = (await api.call(EARN, {"lid": lid, "amount": 1000, "key": "same"}, key=net["a"]))["earnPoints"]
    assert again["transaction"]["id"] == first["transaction"]["id"]
    changed = (await api.call(EARN, {"lid": lid, "amount": 999, "key": "same"}, key=net["a"]))["earnPoints"]
    assert changed["transaction"] is None
    assert changed["userErrors"] == [{"field": ["input", "idempotencyKey"], "code": "IDEMPOTENCY_KEY_CONFLICT",
                                      "message": changed["userErrors"][0]["message"]}]
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(Entry))).scalar() == 1


async def test_hold_capture_partial_and_void(api: Any, admin_key: str) -> None:
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    await api.call(EARN, {"lid": lid, "amount": 10_000, "key": "k"}, key=net["a"])  # 200 points
    held = (await api.call(AUTHORIZE, {"lid": lid, "points": 120, "key": "h1"}, key=net["b"]))["authorizeRedemption"]
    assert held["member"] == {"balance": 80, "heldPoints": 120}
    assert held["hold"]["status"] == "AUTHORIZED"
    captured = (await api.call(CAPTURE, {"hold": held["hold"]["id"], "points": 50, "key": "c1"}, key=net["b"]))
    captured = captured["captureRedemption"]
    assert captured["userErrors"] == []
    assert captured["hold"] == {"status": "CAPTURED", "capturedPoints": 50}
    assert captured["member"] == {"balance": 150, "heldPoints": 0}
    again = (await api.call(VOID, {"hold": held["hold"]["id"], "key": "v1"}, key=net["b"]))["voidRedemption"]
    assert again["userErrors"][0]["code"] == "HOLD_ALREADY_CLOSED"
    # Another merchant cannot touch B's hold: it does not exist for A.
    foreign = (await api.call(VOID, {"hold": held["hold"]["id"], "key": "v2"}, key=net["a"]))["voidRedemption"]
    assert foreign["userErrors"][0]["code"] == "HOLD_NOT_FOUND"
    second = (await api.call(AUTHORIZE, {"lid": lid, "points": 30, "key": "h2"}, key=net["b"]))["authorizeRedemption"]
    voided = (await api.call(VOID, {"hold": second["hold"]["id"], "key": "v3"}, key=net["b"]))["voidRedemption"]
    assert voided["hold"]["status"] == "VOIDED"
    assert voided["member"] == {"balance": 150, "heldPoints": 0}


async def test_reversing_a_spent_earn_leaves_a_debt(api: Any, admin_key: str) -> None:
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    earned = (await api.call(EARN, {"lid": lid, "amount": 5_000, "key": "k"}, key=net["a"]))["earnPoints"]
    await api.call(REDEEM, {"lid": lid, "points": 80, "key": "r"}, key=net["b"])
    reversed_ = (await api.call(REVERSE, {"id": earned["transaction"]["id"], "key": "x"}, key=net["a"]))
    reversed_ = reversed_["reverseTransaction"]
    assert reversed_["userErrors"] == []
    assert reversed_["member"] == {"balance": 0, "owedPoints": 80}
    assert reversed_["transaction"]["reverses"]["id"] == earned["transaction"]["id"]
    blocked = (await api.call(REDEEM, {"lid": lid, "points": 1, "key": "r2"}, key=net["b"]))["redeemPoints"]
    assert blocked["userErrors"][0]["code"] == "MEMBER_OWES_POINTS"
    # B cannot reverse A's transaction: to B it does not exist.
    foreign = (await api.call(REVERSE, {"id": earned["transaction"]["id"], "key": "y"}, key=net["b"]))
    assert foreign["reverseTransaction"]["userErrors"][0]["code"] == "TRANSACTION_NOT_FOUND"


async def test_bad_input_gets_a_code_and_changes_nothing(api: Any, admin_key: str, db: Any) -> None:
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    typo = lid[:-1] + ("0" if lid[-1] != "0" else "1")
    cases = [
        (EARN, {"lid": lid, "amount": 0, "key": "a"}, "earnPoints", "INVALID_AMOUNT"),
        (EARN, {"lid": lid, "amount": -5, "key": "b"}, "earnPoints", "INVALID_AMOUNT"),
        (EARN, {"lid": lid, "amount": 10, "key": "c"}, "earnPoints", "PURCHASE_TOO_SMALL"),
        (EARN, {"lid": typo, "amount": 1000, "key": "d"}, "earnPoints", "INVALID_LOYALTY_ID"),
        (EARN, {"lid": "nonsense", "amount": 1000, "key": "e"}, "earnPoints", "INVALID_LOYALTY_ID"),
        (EARN, {"lid": lid, "amount": 1000, "key": "x" * 200}, "earnPoints", "INVALID_IDEMPOTENCY_KEY"),
        (EARN, {"lid": lid, "amount": 1000, "key": "f", "ref": "r" * 500}, "earnPoints", "INVALID_REFERENCE"),
        (REDEEM, {"lid": lid, "points": 5, "key": "g"}, "redeemPoints", "INSUFFICIENT_POINTS"),
        (REDEEM, {"lid": lid, "points": 0, "key": "h"}, "redeemPoints", "INVALID_POINTS"),
        (CAPTURE, {"hold": "bm90LWFuLWlk", "key": "i"}, "captureRedemption", "INVALID_ID"),
        (REVERSE, {"id": "TWVyY2hhbnQ6MQ==", "key": "j"}, "reverseTransaction", "INVALID_ID"),
        (AUTHORIZE, {"lid": lid, "points": 1, "key": "k", "exp": 0}, "authorizeRedemption", "INVALID_EXPIRY"),
    ]
    for query, variables, field, code in cases:
        payload = (await api.call(query, variables, key=net["a"]))[field]
        assert [e["code"] for e in payload["userErrors"]] == [code], (variables, payload)
        assert payload.get("transaction") is None
    # Beyond 32 bits is refused by GraphQL itself before anything runs.
    body = await api.call(EARN, {"lid": lid, "amount": 2**31, "key": "z"}, key=net["a"], expect_errors=True)
    assert body["errors"][0]["extensions"]["code"]
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(Entry))).scalar() == 0


async def test_roles_are_enforced_with_codes(api: Any, admin_key: str) -> None:
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    anonymous = await api.call(EARN, {"lid": lid, "amount": 100, "key": "k"}, expect_errors=True)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    as_admin = await api.call(EARN, {"lid": lid, "amount": 100, "key": "k"}, key=admin_key, expect_errors=True)
    assert as_admin["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    as_merchant = await api.call(ONBOARD, {"name": "X"}, key=net["a"], expect_errors=True)
    assert as_merchant["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad_key = await api.client.post("/graphql", json={"query": "{ network { name } }"},
                                    headers={"Authorization": "Bearer coa_not-a-key"})
    assert bad_key.status_code == 401
    assert bad_key.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    public = await api.call("{ network { name currency pointValueMinor publicKey } }")
    assert public["network"]["currency"] == "EUR"


async def test_node_never_shows_another_merchants_transaction(api: Any, admin_key: str) -> None:
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    earned = (await api.call(EARN, {"lid": lid, "amount": 1000, "key": "k"}, key=net["a"]))["earnPoints"]
    tx_id = earned["transaction"]["id"]
    assert (await api.call(NODE, {"id": tx_id}, key=net["a"]))["node"]["points"] == 20
    assert (await api.call(NODE, {"id": tx_id}, key=net["b"]))["node"] is None
    assert (await api.call(NODE, {"id": tx_id}, key=admin_key))["node"]["__typename"] == "Transaction"
    assert (await api.call(NODE, {"id": tx_id}, key=net["member"]["memberToken"]))["node"]["points"] == 20
    malformed = await api.call(NODE, {"id": "%%%"}, key=net["a"], expect_errors=True)
    assert malformed["errors"][0]["extensions"]["code"] == "INVALID_ID"


async def test_suspended_merchant_cannot_write_and_revoked_key_cannot_read(api: Any, admin_key: str) -> None:
    from coalition.auth.service import revoke_api_key

    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    merchant_id = (await api.call("{ viewer { ... on MerchantViewer { merchant { id } } } }", key=net["a"]))
    merchant_id = merchant_id["viewer"]["merchant"]["id"]
    suspended = await api.call("""mutation($id: ID!) { suspendMerchant(input: {merchantId: $id}) {
        merchant { status } userErrors { code } } }""", {"id": merchant_id}, key=admin_key)
    assert suspended["suspendMerchant"]["merchant"]["status"] == "SUSPENDED"
    refused = (await api.call(EARN, {"lid": lid, "amount": 1000, "key": "k"}, key=net["a"]))["earnPoints"]
    assert refused["userErrors"][0]["code"] == "MERCHANT_SUSPENDED"
    await revoke_api_key(api.client._transport.app.state.services.db, net["b"])
    response = await api.client.post("/graphql", json={"query": "{ viewer { __typename } }"},
                                     headers={"Authorization": f"Bearer {net['b']}"})
    assert response.status_code == 401


async def test_health_endpoints(api: Any) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


FULL_EARN = """mutation($lid: String!, $amount: Int!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key, reference: "R"}) {
    transaction { id kind points amountMinor reference createdAt merchant { id name } reverses { id } hold { id }
      member { id loyaltyId referralCode balance heldPoints owedPoints lifetimePoints tier } }
    member { id loyaltyId referralCode balance heldPoints owedPoints lifetimePoints tier }
    userErrors { field code message } } }"""
FULL_REDEEM = """mutation($lid: String!, $points: Int!, $key: String!) {
  redeemPoints(input: {loyaltyId: $lid, points: $points, idempotencyKey: $key, reference: "R"}) {
    transaction { id kind points amountMinor reference createdAt merchant { id name } reverses { id } hold { id }
      member { id loyaltyId balance heldPoints owedPoints lifetimePoints tier } }
    member { id loyaltyId referralCode balance heldPoints owedPoints lifetimePoints tier }
    userErrors { field code message } } }"""


async def test_earn_and_redeem_answer_the_same_on_either_ledger_path(api: Any, admin_key: str, db: Any, keys: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # given two members with the same history, the first served as configured (on PostgreSQL
    # the one-statement path), the second by the multi-statement path only
    net = await setup_network(api, admin_key)
    other = (await api.call(ENROLL, {"key": "e-2"}, key=net["a"]))["enrollMember"]["member"]
    ledger = api.client._transport.app.state.services.ledger
    fast_statements: list[bool] = []
    run = fastpath._run

    async def recording(*args: Any) -> Any:
        done = await run(*args)
        fast_statements.extend(d is not None for d in done)
        return done

    monkeypatch.setattr(fastpath, "_run", recording)
    expected_fast = [True, True] if ledger.fast_path else []
    bodies = []
    for member, fast in ((net["member"]["member"], ledger.fast_path), (other, False)):
        ledger.fast_path = fast
        earned = await api.client.post("/graphql", json={"query": FULL_EARN, "variables": {
            "lid": member["loyaltyId"], "amount": 5_000, "key": f"earn-{member['loyaltyId']}"}},
            headers={"Authorization": f"Bearer {net['a']}"})
        redeemed = await api.client.post("/graphql", json={"query": FULL_REDEEM, "variables": {
            "lid": member["loyaltyId"], "points": 40, "key": f"redeem-{member['loyaltyId']}"}},
            headers={"Authorization": f"Bearer {net['b']}"})
        body = earned.content + b"\n" + redeemed.content
        # what names the member and the transactions differs by construction; nothing else may
        async with db.read() as conn:
            ids = (await conn.execute(select(Entry.id).where(Entry.idempotency_key.in_(
                [f"earn-{member['loyaltyId']}", f"redeem-{member['loyaltyId']}"])).order_by(Entry.id))).scalars()
            for n, entry_id in enumerate(ids):
                body = body.replace(keys.global_ids.encode("Transaction", entry_id).encode(), f"<tx{n}>".encode())
        for name in ("id", "loyaltyId", "referralCode"):
            body = body.replace(member[name].encode(), f"<{name}>".encode())
        bodies.append(re.sub(rb'"createdAt":"[^"]+"', b'"createdAt":"<now>"', body))  # the app's clock is real
    # then the responses are the same bytes
    assert fast_statements == expected_fast
    assert b"userErrors\":[]" in bodies[0]
    assert bodies[0] == bodies[1]
