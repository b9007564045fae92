"""Trust between partners, through the HTTP API: holds addressed by their HOLD transaction's
id (contract additions), proof of presence above the network's allowance, and refusals kept
under their idempotency key."""

from __future__ import annotations

from typing import Any

from test_api_ledger import AUTHORIZE, CAPTURE, EARN, REDEEM, VOID, setup_network

from coalition.ledger.invariants import assert_ledger_consistent


async def test_capture_and_void_accept_the_hold_transactions_id(api: Any, admin_key: str, db: Any, keys: Any) -> None:
    # Given a contract client that keeps only LedgerPayload.transaction.id
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    await api.call(EARN, {"lid": lid, "amount": 5_000, "key": "k"}, key=net["a"])  # 100 points
    held = (await api.call(AUTHORIZE, {"lid": lid, "points": 40, "key": "h1"}, key=net["b"]))["authorizeRedemption"]
    transaction_id = held["transaction"]["id"]
    assert keys.global_ids.decode(transaction_id, "Transaction") is not None
    # When it captures with that id, then the hold is captured
    captured = (await api.call(CAPTURE, {"hold": transaction_id, "points": 10, "key": "c1"}, key=net["b"]))
    captured = captured["captureRedemption"]
    assert captured["userErrors"] == []
    assert captured["hold"] == {"status": "CAPTURED", "capturedPoints": 10}
    assert captured["member"] == {"balance": 90, "heldPoints": 0}
    # and a retry with the Hold's own id is the same request (same key, same hold).
    again = (await api.call(CAPTURE, {"hold": held["hold"]["id"], "points": 10, "key": "c1"}, key=net["b"]))
    assert again["captureRedemption"]["userErrors"] == []
    assert again["captureRedemption"]["hold"] == {"status": "CAPTURED", "capturedPoints": 10}

    second = (await api.call(AUTHORIZE, {"lid": lid, "points": 30, "key": "h2"}, key=net["b"]))["authorizeRedemption"]
    voided = (await api.call(VOID, {"hold": second["transaction"]["id"], "key": "v1"}, key=net["b"]))
    assert voided["voidRedemption"]["userErrors"] == []
    assert voided["voidRedemption"]["hold"] == {"status": "VOIDED"}
    assert voided["voidRedemption"]["member"] == {"balance": 90, "heldPoints": 0}
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


async def test_capture_refuses_a_transaction_that_is_not_a_hold(api: Any, admin_key: str, db: Any, keys: Any) -> None:
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    await api.call(EARN, {"lid": lid, "amount": 5_000, "key": "k"}, key=net["a"])
    redeemed = (await api.call(REDEEM, {"lid": lid, "points": 5, "key": "r1"}, key=net["b"]))["redeemPoints"]
    for mutation, name, variables in ((CAPTURE, "captureRedemption", {"points": None}),
                                      (VOID, "voidRedemption", {})):
        refused = (await api.call(mutation, {"hold": redeemed["transaction"]["id"], "key": f"x-{name}", **variables},
                                  key=net["b"]))[name]
        assert refused["hold"] is None
        assert refused["userErrors"][0]["code"] == "NOT_A_HOLD", refused
        assert refused["userErrors"][0]["field"] == ["input", "holdId"]
    # Another merchant's HOLD transaction is as unknown as another merchant's hold.
    held = (await api.call(AUTHORIZE, {"lid": lid, "points": 5, "key": "h"}, key=net["b"]))["authorizeRedemption"]
    foreign = (await api.call(VOID, {"hold": held["transaction"]["id"], "key": "v"}, key=net["a"]))["voidRedemption"]
    assert foreign["userErrors"][0]["code"] == "HOLD_NOT_FOUND"
    unknown_id = keys.global_ids.encode("Transaction", 999999)
    unknown = (await api.call(VOID, {"hold": unknown_id, "key": "v9"}, key=net["b"]))
    assert unknown["voidRedemption"]["userErrors"][0]["code"] == "HOLD_NOT_FOUND"
    other_type = (await api.call(VOID, {"hold": keys.global_ids.encode("Merchant", 1), "key": "v8"}, key=net["b"]))
    assert other_type["voidRedemption"]["userErrors"][0]["code"] == "INVALID_ID"
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


SET_POLICY = """mutation($points: Int) { setNetworkPolicy(input: {redeemWithoutProofPoints: $points}) {
  policy { redeemWithoutProofPoints } userErrors { field code message } } }"""
REDEEM_WITH_PROOF = """mutation($lid: String!, $points: Int!, $key: String!, $proof: String) {
  redeemPoints(input: {loyaltyId: $lid, points: $points, idempotencyKey: $key, memberProof: $proof}) {
    transaction { id points } member { balance } userErrors { field code message } } }"""
AUTHORIZE_WITH_PROOF = """mutation($lid: String!, $points: Int!, $key: String!, $proof: String) {
  authorizeRedemption(input: {loyaltyId: $lid, points: $points, idempotencyKey: $key, memberProof: $proof}) {
    hold { points } userErrors { field code message } } }"""
MY_HISTORY = """{ viewer { ... on MemberViewer { member {
  transactions(first: 50) { edges { node { kind points merchant { name } } } } } } } }"""
MY_CODE = """{ viewer { ... on MemberViewer { member { presenceCode } } } }"""
CODE_BY_LOYALTY_ID = """query($lid: String!) { member(loyaltyId: $lid) { presenceCode } }"""


async def test_proof_of_presence_through_the_api(api: Any, admin_key: str, db: Any) -> None:
    # given a network whose policy lets a merchant take 50 points a day without proof
    net = await setup_network(api, admin_key)
    lid = net["member"]["member"]["loyaltyId"]
    await api.call(EARN, {"lid": lid, "amount": 50_000, "key": "k"}, key=net["a"])  # 1,000 points
    policy = (await api.call(SET_POLICY, {"points": 50}, key=admin_key))["setNetworkPolicy"]
    assert policy == {"policy": {"redeemWithoutProofPoints": 50}, "userErrors": []}
    refused = (await api.call(SET_POLICY, {"points": -1}, key=admin_key))["setNetworkPolicy"]
    assert refused["userErrors"][0]["code"] == "INVALID_REDEEM_WITHOUT_PROOF_POINTS"
    # small redemptions pass without proof
    small = (await api.call(REDEEM_WITH_PROOF, {"lid": lid, "points": 20, "key": "r1"}, key=net["b"]))["redeemPoints"]
    assert small["userErrors"] == []
    held = (await api.call(AUTHORIZE_WITH_PROOF, {"lid": lid, "points": 30, "key": "h1"}, key=net["b"]))
    assert held["authorizeRedemption"]["userErrors"] == []
    # beyond, the merchant must ask for the member's code
    big = (await api.call(REDEEM_WITH_PROOF, {"lid": lid, "points": 500, "key": "r2"}, key=net["b"]))["redeemPoints"]
    assert big["transaction"] is None
    assert big["userErrors"][0]["code"] == "MEMBER_PROOF_REQUIRED"
    assert big["userErrors"][0]["field"] == ["input", "memberProof"]
    # the code is the member's alone: a merchant reading the member gets null
    assert (await api.call(CODE_BY_LOYALTY_ID, {"lid": lid}, key=net["b"]))["member"] == {"presenceCode": None}
    code = (await api.call(MY_CODE, key=net["member"]["memberToken"]))["viewer"]["member"]["presenceCode"]
    assert len(code) == 8 and code.isdigit()
    # the retry under the refused key keeps its refusal; a new key with the code goes through, once
    kept = (await api.call(REDEEM_WITH_PROOF, {"lid": lid, "points": 500, "key": "r2", "proof": code},
                           key=net["b"]))["redeemPoints"]
    assert kept["userErrors"][0]["code"] == "MEMBER_PROOF_REQUIRED"
    done = (await api.call(REDEEM_WITH_PROOF, {"lid": lid, "points": 500, "key": "r3", "proof": code},
                           key=net["b"]))["redeemPoints"]
    assert done["userErrors"] == [] and done["member"]["balance"] == 450
    reused = (await api.call(REDEEM_WITH_PROOF, {"lid": lid, "points": 100, "key": "r4", "proof": code},
                             key=net["a"]))["redeemPoints"]
    assert reused["userErrors"][0]["code"] == "INVALID_MEMBER_PROOF"
    # the member sees every redemption and hold in the history, whoever made it; refusals wrote nothing
    history = (await api.call(MY_HISTORY, key=net["member"]["memberToken"]))["viewer"]["member"]["transactions"]
    assert sorted((e["node"]["kind"], e["node"]["points"], e["node"]["merchant"]["name"])
                  for e in history["edges"]) == [("EARN", 1000, "Bakery"), ("HOLD", -30, "Books"),
                                                 ("REDEEM", -500, "Books"), ("REDEEM", -20, "Books")]
    async with db.read() as conn:
        await assert_ledger_consistent(conn)
