"""Gift cards through the real HTTP API: sell at A, check the balance, spend and hold at B, refund, wallet."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from coalition.ledger.invariants import assert_ledger_consistent

ONBOARD = """mutation($name: String!) { onboardMerchant(input: {name: $name}) { merchant { id } apiKey } }"""
ENROLL = """mutation($key: String!) { enrollMember(input: {idempotencyKey: $key}) { member { id } claimCode } }"""
CLAIM = """mutation($code: String!) { claimMemberAccess(input: {claimCode: $code}) { memberToken } }"""
PAYLOAD = "giftCard { id last4 currency balanceMinor heldMinor issuer { id } expiresAt } transactionId holdId " \
          "amountMinor userErrors { field code message }"
ISSUE = """mutation($amount: Int!, $key: String!, $currency: String) {
  issueGiftCard(input: {amountMinor: $amount, idempotencyKey: $key, reference: "R-1", currency: $currency}) {
  code FIELDS } }""".replace("FIELDS", PAYLOAD)
REDEEM = """mutation($code: String!, $amount: Int!, $key: String!) {
  redeemGiftCard(input: {code: $code, amountMinor: $amount, idempotencyKey: $key}) {
  FIELDS } }""".replace("FIELDS", PAYLOAD)
AUTHORIZE = """mutation($code: String!, $amount: Int!, $key: String!) {
  authorizeGiftCard(input: {code: $code, amountMinor: $amount, idempotencyKey: $key}) {
  FIELDS } }""".replace("FIELDS", PAYLOAD)
CAPTURE = """mutation($hold: ID!, $amount: Int, $key: String!) {
  captureGiftCard(input: {holdId: $hold, amountMinor: $amount, idempotencyKey: $key}) {
  FIELDS } }""".replace("FIELDS", PAYLOAD)
VOID = """mutation($hold: ID!, $key: String!) {
  voidGiftCard(input: {holdId: $hold, idempotencyKey: $key}) {
  FIELDS } }""".replace("FIELDS", PAYLOAD)
REFUND = """mutation($id: ID!, $key: String!) {
  refundGiftCard(input: {transactionId: $id, idempotencyKey: $key}) {
  FIELDS } }""".replace("FIELDS", PAYLOAD)
ATTACH = """mutation($code: String!) { attachGiftCard(input: {code: $code}) {
  FIELDS } }""".replace("FIELDS", PAYLOAD)
BALANCE = """query($code: String!) { giftCard(code: $code) { id last4 balanceMinor currency issuer { id } } }"""
LIABILITIES = """{ giftCardLiabilities { issuer { id } cards outstandingMinor currency } }"""
WALLET = """{ viewer { ... on MemberViewer { member { giftCards { id balanceMinor } } } } }"""
MEMBER_CARDS = """query($id: ID!) { node(id: $id) { ... on Member { giftCards { id } } } }"""
NODE = """query($id: ID!) { node(id: $id) { __typename ... on GiftCard { balanceMinor } } }"""


async def network(api: Any, admin_key: str) -> dict[str, Any]:
    a = (await api.call(ONBOARD, {"name": "Bakery"}, key=admin_key))["onboardMerchant"]
    b = (await api.call(ONBOARD, {"name": "Books"}, key=admin_key))["onboardMerchant"]
    enrolled = (await api.call(ENROLL, {"key": "e1"}, key=a["apiKey"]))["enrollMember"]
    token = (await api.call(CLAIM, {"code": enrolled["claimCode"]}))["claimMemberAccess"]["memberToken"]
    return {"a": a["apiKey"], "b": b["apiKey"], "a_id": a["merchant"]["id"], "b_id": b["merchant"]["id"],
            "member": token, "member_id": enrolled["member"]["id"]}


async def test_sell_check_spend_hold_refund_and_wallet(api: Any, admin_key: str, db: Any) -> None:
    net = await network(api, admin_key)
    sold = (await api.call(ISSUE, {"amount": 5000, "key": "sale-1"}, key=net["a"]))["issueGiftCard"]
    assert sold["userErrors"] == [] and sold["code"] and sold["giftCard"]["balanceMinor"] == 5000
    assert sold["giftCard"]["issuer"]["id"] == net["a_id"] and sold["giftCard"]["currency"] == "EUR"
    code = sold["code"]
    # a retry returns the card, never the code again
    again = (await api.call(ISSUE, {"amount": 5000, "key": "sale-1"}, key=net["a"]))["issueGiftCard"]
    assert again["giftCard"]["id"] == sold["giftCard"]["id"] and again["code"] is None
    # anyone with a key and the code checks the balance; the code's dashes and case do not matter
    assert (await api.call(BALANCE, {"code": code.lower().replace("-", "")}, key=net["b"]))["giftCard"][
        "balanceMinor"] == 5000
    # spend at B, partially
    spent = (await api.call(REDEEM, {"code": code, "amount": 1200, "key": "s1"}, key=net["b"]))["redeemGiftCard"]
    assert spent["userErrors"] == [] and spent["giftCard"]["balanceMinor"] == 3800 and spent["amountMinor"] == -1200
    # hold, capture part
    held = (await api.call(AUTHORIZE, {"code": code, "amount": 1000, "key": "h1"}, key=net["b"]))[
        "authorizeGiftCard"]
    assert held["giftCard"]["heldMinor"] == 1000 and held["holdId"]
    captured = (await api.call(CAPTURE, {"hold": held["holdId"], "amount": 400, "key": "c1"}, key=net["b"]))[
        "captureGiftCard"]
    assert captured["userErrors"] == [] and captured["giftCard"]["balanceMinor"] == 3400
    # A cannot void B's hold (not found), B's void after capture is refused
    foreign = (await api.call(VOID, {"hold": held["holdId"], "key": "v1"}, key=net["a"]))["voidGiftCard"]
    assert [e["code"] for e in foreign["userErrors"]] == ["HOLD_NOT_FOUND"] and foreign["giftCard"] is None
    # refund B's spend to the card
    refunded = (await api.call(REFUND, {"id": spent["transactionId"], "key": "r1"}, key=net["b"]))["refundGiftCard"]
    assert refunded["userErrors"] == [] and refunded["giftCard"]["balanceMinor"] == 4600
    # liability: A owes what its card still holds; B sees only its own (none); admin sees all
    assert (await api.call(LIABILITIES, key=net["a"]))["giftCardLiabilities"] == [
        {"issuer": {"id": net["a_id"]}, "cards": 1, "outstandingMinor": 4600, "currency": "EUR"}]
    assert (await api.call(LIABILITIES, key=net["b"]))["giftCardLiabilities"] == []
    assert len((await api.call(LIABILITIES, key=admin_key))["giftCardLiabilities"]) == 1
    # the member attaches the card and sees it in the wallet; a merchant does not see the wallet
    attached = (await api.call(ATTACH, {"code": code}, key=net["member"]))["attachGiftCard"]
    assert attached["userErrors"] == [] and attached["giftCard"]["id"] == sold["giftCard"]["id"]
    wallet = (await api.call(WALLET, key=net["member"]))["viewer"]["member"]["giftCards"]
    assert wallet == [{"id": sold["giftCard"]["id"], "balanceMinor": 4600}]
    assert (await api.call(MEMBER_CARDS, {"id": net["member_id"]}, key=net["a"]))["node"]["giftCards"] is None
    # by ID: the issuer and the member see it, another merchant gets null exactly like a missing card
    card_id = sold["giftCard"]["id"]
    assert (await api.call(NODE, {"id": card_id}, key=net["a"]))["node"]["balanceMinor"] == 4600
    assert (await api.call(NODE, {"id": card_id}, key=net["member"]))["node"]["balanceMinor"] == 4600
    assert (await api.call(NODE, {"id": card_id}, key=net["b"]))["node"] is None
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


@pytest.mark.parametrize(("variables", "code"), [
    ({"amount": 0}, "INVALID_AMOUNT"), ({"amount": -1}, "INVALID_AMOUNT"), ({"amount": 50_001}, "INVALID_AMOUNT"),
    ({"amount": 100, "currency": "USD"}, "INVALID_CURRENCY")])
async def test_bad_issue_input_is_a_user_error(api: Any, admin_key: str, variables: dict[str, Any],
                                               code: str) -> None:
    net = await network(api, admin_key)
    payload = (await api.call(ISSUE, {"key": "x", **variables}, key=net["a"]))["issueGiftCard"]
    assert [e["code"] for e in payload["userErrors"]] == [code] and payload["giftCard"] is None
    assert payload["code"] is None
    assert (await api.call(LIABILITIES, key=admin_key))["giftCardLiabilities"] == []


async def test_a_member_or_anonymous_cannot_sell(api: Any, admin_key: str) -> None:
    net = await network(api, admin_key)
    for key in (net["member"], None, admin_key):
        body = await api.call(ISSUE, {"amount": 100, "key": "x"}, key=key, expect_errors=True)
        assert body["data"] is None or body["data"]["issueGiftCard"] is None
        assert {e["extensions"]["code"] for e in body["errors"]} <= {"FORBIDDEN", "UNAUTHENTICATED"}


@pytest.fixture
def settings(settings: Any) -> Any:
    return dataclasses.replace(settings, gift_card_lookup_failures=5)


async def test_guessing_balances_over_http_is_throttled(api: Any, admin_key: str) -> None:
    net = await network(api, admin_key)
    sold = (await api.call(ISSUE, {"amount": 100, "key": "s"}, key=net["a"]))["issueGiftCard"]
    answers = []
    for n in range(8):
        body = await api.call(BALANCE, {"code": f"ABCD-EFGH-JKMN-PQR{n}-XYZ"}, key=net["b"], expect_errors=True)
        assert body["data"]["giftCard"] is None
        answers.append({e["extensions"]["code"] for e in body.get("errors", [])})
    assert {"RATE_LIMITED"} in answers and answers[0] == set()
    # throttled, even the right code is refused to this caller; another caller still checks its card
    body = await api.call(BALANCE, {"code": sold["code"]}, key=net["b"], expect_errors=True)
    assert body["data"]["giftCard"] is None
    assert (await api.call(BALANCE, {"code": sold["code"]}, key=net["a"]))["giftCard"]["balanceMinor"] == 100
    # and the failures are a metric on /metrics
    metrics = await api.client.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"})
    assert 'coalition_gift_card_lookup_failures_total{outcome="throttled"}' in metrics.text
