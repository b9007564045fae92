"""Disputes: a member sees every redemption at every merchant and disputes its own; admins review."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from member_access import claim_over_api

ONBOARD = """mutation($name: String!) { onboardMerchant(input: {name: $name, earnRatePointsPerUnit: 1}) {
  apiKey userErrors { code } } }"""
ENROLL = """mutation($key: String!, $email: String) { enrollMember(input: {idempotencyKey: $key, email: $email}) {
  member { loyaltyId } claimCode userErrors { code } } }"""
EARN = """mutation($lid: String!, $amount: Int!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key}) {
    transaction { id } userErrors { code } } }"""
REDEEM = """mutation($lid: String!, $points: Int!, $key: String!) {
  redeemPoints(input: {loyaltyId: $lid, points: $points, idempotencyKey: $key}) {
    transaction { id } userErrors { code } } }"""
AUTHORIZE = """mutation($lid: String!, $points: Int!, $key: String!) {
  authorizeRedemption(input: {loyaltyId: $lid, points: $points, idempotencyKey: $key}) {
    transaction { id } hold { id } userErrors { code } } }"""
CAPTURE = """mutation($hold: ID!, $key: String!) { captureRedemption(input: {holdId: $hold, idempotencyKey: $key}) {
  transaction { id kind } userErrors { code } } }"""
HISTORY = """{ viewer { ... on MemberViewer { member {
  transactions(first: 50) { edges { node { id kind points merchant { name } } } } } } } }"""
DISPUTE = """mutation($id: ID!, $reason: String!, $key: String!) {
  disputeTransaction(input: {transactionId: $id, reason: $reason, idempotencyKey: $key}) {
    dispute { id status reason transaction { id kind } merchant { name } member { loyaltyId } }
    userErrors { field code message } } }"""
DISPUTES = """query($after: String, $status: DisputeStatus) { disputes(first: 1, after: $after, status: $status) {
  edges { cursor node { id status reason transaction { id } merchant { name } } }
  pageInfo { hasNextPage endCursor } } }"""
RESOLVE = """mutation($id: ID!, $status: DisputeResolution!, $note: String) {
  resolveDispute(input: {disputeId: $id, status: $status, note: $note}) {
    dispute { id status resolvedAt resolutionNote } userErrors { field code message } } }"""
NODE = """query($id: ID!) { node(id: $id) { __typename ... on Dispute { status } } }"""
MY_DISPUTES = """{ viewer { ... on MemberViewer { member { disputes { edges { node { id status } } } } } } }"""
MEMBER_DISPUTES = """query($lid: String!) { member(loyaltyId: $lid) { disputes { edges { node { id } } } } }"""


@pytest.fixture
async def net(api: Any, admin_key: str) -> dict[str, Any]:
    """Ana enrolls at the bakery and earns there; a rogue shop spends her points; Bo is another member."""
    shops = {name: (await api.call(ONBOARD, {"name": name}, key=admin_key))["onboardMerchant"]["apiKey"]
             for name in ("Bakery", "Rogue")}
    people = {}
    for name in ("ana", "bo"):
        enrolled = (await api.call(ENROLL, {"key": name, "email": f"{name}@example.com"},
                                   key=shops["Bakery"]))["enrollMember"]
        lid = enrolled["member"]["loyaltyId"]
        earned = (await api.call(EARN, {"lid": lid, "amount": 10_000, "key": f"earn-{name}"}, key=shops["Bakery"]))
        people[name] = {"lid": lid, "token": await claim_over_api(api, enrolled["claimCode"]),
                        "earn": earned["earnPoints"]["transaction"]["id"]}
    redeemed = await api.call(REDEEM, {"lid": people["ana"]["lid"], "points": 20, "key": "r-1"}, key=shops["Rogue"])
    held = await api.call(AUTHORIZE, {"lid": people["ana"]["lid"], "points": 15, "key": "h-1"}, key=shops["Rogue"])
    captured = await api.call(CAPTURE, {"hold": held["authorizeRedemption"]["hold"]["id"], "key": "c-1"},
                              key=shops["Rogue"])
    bo_redeemed = await api.call(REDEEM, {"lid": people["bo"]["lid"], "points": 5, "key": "r-2"}, key=shops["Rogue"])
    return {"shops": shops, "admin": admin_key, **people,
            "redeem": redeemed["redeemPoints"]["transaction"]["id"],
            "capture": captured["captureRedemption"]["transaction"]["id"],
            "bo_redeem": bo_redeemed["redeemPoints"]["transaction"]["id"]}


async def dispute(api: Any, key: str, tx: str, reason: str = "I was not there", idem: str = "d-1") -> dict[str, Any]:
    return (await api.call(DISPUTE, {"id": tx, "reason": reason, "key": idem}, key=key))["disputeTransaction"]


async def test_a_member_sees_every_redemption_at_every_merchant(api: Any, net: dict[str, Any]) -> None:
    edges = (await api.call(HISTORY, key=net["ana"]["token"]))["viewer"]["member"]["transactions"]["edges"]
    seen = {(e["node"]["kind"], e["node"]["merchant"]["name"]) for e in edges}
    assert seen == {("EARN", "Bakery"), ("REDEEM", "Rogue"), ("HOLD", "Rogue"), ("CAPTURE", "Rogue")}
    ids = {e["node"]["id"] for e in edges}
    assert {net["redeem"], net["capture"]} <= ids and net["bo_redeem"] not in ids


async def test_a_member_disputes_its_redemption_and_an_admin_resolves_it(
        api: Any, net: dict[str, Any], keys: Any) -> None:
    opened = await dispute(api, net["ana"]["token"], net["redeem"])
    assert opened["userErrors"] == []
    d = opened["dispute"]
    assert (d["status"], d["reason"], d["transaction"]["id"], d["merchant"]["name"], d["member"]["loyaltyId"]) == (
        "OPEN", "I was not there", net["redeem"], "Rogue", net["ana"]["lid"])
    # A retry with the same key is the same dispute; another key on the same transaction is refused.
    assert (await dispute(api, net["ana"]["token"], net["redeem"]))["dispute"]["id"] == d["id"]
    conflict = await dispute(api, net["ana"]["token"], net["redeem"], reason="changed my mind")
    assert conflict["userErrors"][0]["code"] == "IDEMPOTENCY_KEY_CONFLICT" and conflict["dispute"] is None
    twice = await dispute(api, net["ana"]["token"], net["redeem"], idem="d-2")
    assert twice["userErrors"][0]["code"] == "DISPUTE_EXISTS"
    capture = await dispute(api, net["ana"]["token"], net["capture"], idem="d-3")
    assert capture["userErrors"] == [] and capture["dispute"]["transaction"]["kind"] == "CAPTURE"

    # The admin pages through the open disputes, newest first.
    first = (await api.call(DISPUTES, {"status": "OPEN"}, key=net["admin"]))["disputes"]
    assert [e["node"]["id"] for e in first["edges"]] == [capture["dispute"]["id"]]
    assert first["pageInfo"]["hasNextPage"] is True
    second = (await api.call(DISPUTES, {"after": first["pageInfo"]["endCursor"]}, key=net["admin"]))["disputes"]
    assert [e["node"]["id"] for e in second["edges"]] == [d["id"]]

    resolved = (await api.call(RESOLVE, {"id": d["id"], "status": "RESOLVED", "note": "refunded"},
                               key=net["admin"]))["resolveDispute"]
    assert resolved["userErrors"] == [] and resolved["dispute"]["status"] == "RESOLVED"
    assert resolved["dispute"]["resolutionNote"] == "refunded" and resolved["dispute"]["resolvedAt"]
    again = (await api.call(RESOLVE, {"id": d["id"], "status": "DISMISSED"}, key=net["admin"]))["resolveDispute"]
    assert again["userErrors"][0]["code"] == "DISPUTE_NOT_OPEN"
    missing = (await api.call(RESOLVE, {"id": keys.global_ids.encode("Dispute", 999), "status": "DISMISSED"},
                              key=net["admin"]))["resolveDispute"]
    assert missing["userErrors"][0]["code"] == "DISPUTE_NOT_FOUND"
    open_now = (await api.call(DISPUTES, {"status": "OPEN"}, key=net["admin"]))["disputes"]
    assert [e["node"]["id"] for e in open_now["edges"]] == [capture["dispute"]["id"]]
    # The member follows its disputes; another member sees none of them.
    assert (await api.call(NODE, {"id": d["id"]}, key=net["ana"]["token"]))["node"]["status"] == "RESOLVED"
    mine = (await api.call(MY_DISPUTES, key=net["ana"]["token"]))["viewer"]["member"]["disputes"]["edges"]
    assert [(e["node"]["id"], e["node"]["status"]) for e in mine] == [(capture["dispute"]["id"], "OPEN"),
                                                                      (d["id"], "RESOLVED")]
    assert (await api.call(MY_DISPUTES, key=net["bo"]["token"]))["viewer"]["member"]["disputes"]["edges"] == []


@pytest.mark.parametrize(("target", "reason", "code"), [
    ("bo_redeem", "not mine", "TRANSACTION_NOT_FOUND"),  # another member's redemption
    ("earn", "not mine", "TRANSACTION_NOT_FOUND"),  # bo's earn, seen from ana
    ("own_earn", "too few points", "NOT_DISPUTABLE"),
    ("redeem", "   ", "INVALID_REASON"),
    ("redeem", "x" * 501, "INVALID_REASON"),
    ("garbage", "why", "INVALID_ID"),
])
async def test_a_dispute_that_cannot_be_opened_says_why(api: Any, net: dict[str, Any], target: str, reason: str,
                                                        code: str) -> None:
    tx = {"bo_redeem": net["bo_redeem"], "earn": net["bo"]["earn"], "own_earn": net["ana"]["earn"],
          "redeem": net["redeem"], "garbage": "not-an-id"}[target]
    refused = await dispute(api, net["ana"]["token"], tx, reason=reason)
    assert refused["dispute"] is None and refused["userErrors"][0]["code"] == code
    assert (await api.call(DISPUTES, key=net["admin"]))["disputes"]["edges"] == []


async def test_only_the_member_opens_and_only_admins_list_disputes(api: Any, net: dict[str, Any]) -> None:
    opened = (await dispute(api, net["ana"]["token"], net["redeem"]))["dispute"]
    for key in (net["shops"]["Rogue"], net["shops"]["Bakery"], net["admin"], None):
        body = await api.call(DISPUTE, {"id": net["redeem"], "reason": "x", "key": "k"}, key=key, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "UNAUTHENTICATED"}
    for key in (net["shops"]["Rogue"], net["bo"]["token"], net["ana"]["token"], None):
        body = await api.call(DISPUTES, key=key, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "UNAUTHENTICATED"}
        body = await api.call(RESOLVE, {"id": opened["id"], "status": "DISMISSED"}, key=key, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "UNAUTHENTICATED"}
    # A merchant reading the member gets no disputes; an admin does.
    for shop in net["shops"].values():
        assert (await api.call(MEMBER_DISPUTES, {"lid": net["ana"]["lid"]}, key=shop))["member"]["disputes"] is None
    admin_view = (await api.call(MEMBER_DISPUTES, {"lid": net["ana"]["lid"]}, key=net["admin"]))["member"]
    assert [e["node"]["id"] for e in admin_view["disputes"]["edges"]] == [opened["id"]]
    # Nobody but the member and admins finds the dispute by its ID.
    for key in (net["shops"]["Rogue"], net["bo"]["token"]):
        assert (await api.call(NODE, {"id": opened["id"]}, key=key))["node"] is None
    assert (await api.call(NODE, {"id": opened["id"]}, key=net["admin"]))["node"]["status"] == "OPEN"


async def test_concurrent_disputes_of_one_transaction_open_one(api: Any, net: dict[str, Any]) -> None:
    results = await asyncio.gather(*(dispute(api, net["ana"]["token"], net["redeem"], idem=f"k-{i}")
                                     for i in range(4)))
    opened = [r for r in results if r["dispute"] is not None]
    assert len(opened) == 1
    assert sorted(r["userErrors"][0]["code"] for r in results if r["dispute"] is None) == ["DISPUTE_EXISTS"] * 3
