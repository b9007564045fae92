"""Issue 13, item 1 and the 64-bit ID of item 6: what a rogue partner tried, refused.

A merchant used to list every member with ``node(id: base64("Member:1"))``, ``Member:2``, …
and an ID beyond 64 bits was an internal error. The full matrix is test_tenant_matrix.py.
"""

from __future__ import annotations

import base64
from typing import Any

from coalition.auth.models import Role
from coalition.auth.service import create_api_key
from coalition.crypto import NetworkKeys

NODE = """query($id: ID!) { node(id: $id) { __typename id ... on Member { loyaltyId balance referralCode tier } } }"""
MEMBER = """query($lid: String!) { member(loyaltyId: $lid) { id loyaltyId balance } }"""
MERCHANTS = """query($after: String) { merchants(first: 1, after: $after) {
  edges { cursor node { id name } } pageInfo { endCursor hasNextPage } } }"""


def guessed(type_name: str, value: int | str) -> str:
    return base64.b64encode(f"{type_name}:{value}".encode()).decode()


async def merchant_key(db: Any, merchant_id: int) -> str:
    async with db.sessions.begin() as session:
        return await create_api_key(session, Role.MERCHANT, merchant_id=merchant_id)


async def small_network(db: Any, make_merchant: Any, make_member: Any, ledger: Any) -> dict[str, Any]:
    a, b, c = [(await make_merchant(name=name)).merchant for name in ("A", "B", "C")]
    members = [(await make_member(a.id)).member for _ in range(3)] + [(await make_member(b.id)).member]
    await ledger.earn(merchant_id=b.id, loyalty_id=members[0].loyalty_id, purchase_amount_minor=1000,
                      idempotency_key="b-buys")
    return {"a": a, "b": b, "c": c, "members": members, "keys": {
        "a": await merchant_key(db, a.id), "b": await merchant_key(db, b.id), "c": await merchant_key(db, c.id)}}


async def test_a_merchant_cannot_list_members_by_guessing_ids(api: Any, db: Any, make_merchant: Any,
                                                              make_member: Any, ledger: Any) -> None:
    net = await small_network(db, make_merchant, make_member, ledger)
    # C enrolled nobody and sold nothing: it walks Member:1, Member:2, ...
    for n in range(1, 8):
        body = await api.call(NODE, {"id": guessed("Member", n)}, key=net["keys"]["c"], expect_errors=True)
        assert body["data"]["node"] is None, body["data"]
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_ID"]


async def test_an_id_beyond_64_bits_or_garbage_is_invalid_not_an_internal_error(
        api: Any, admin_key: str, db: Any, make_merchant: Any) -> None:
    await make_merchant(name="A")
    for raw in (guessed("Member", "99999999999999999999"), guessed("Member", 2**64), guessed("Member", -1),
                guessed("Member", "1e3"), guessed("Nope", 1), "not base64 at all", "", "\u0000" * 22,
                "A" * 22, "A" * 10_000):
        response = await api.client.post("/graphql", json={"query": NODE, "variables": {"id": raw}},
                                         headers={"Authorization": f"Bearer {admin_key}"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"]["node"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_ID"], (raw[:30], body)


async def test_a_merchant_sees_members_it_knows_and_null_for_others(
        api: Any, db: Any, keys: NetworkKeys, make_merchant: Any, make_member: Any, ledger: Any) -> None:
    net = await small_network(db, make_merchant, make_member, ledger)
    enrolled_at_a, bought_at_b = net["members"][1], net["members"][0]
    ids = keys.global_ids
    # A enrolled it: visible; B sold to members[0]: visible; C knows neither.
    seen = await api.call(NODE, {"id": ids.encode("Member", enrolled_at_a.id)}, key=net["keys"]["a"])
    assert seen["node"]["loyaltyId"] == enrolled_at_a.loyalty_id
    seen = await api.call(NODE, {"id": ids.encode("Member", bought_at_b.id)}, key=net["keys"]["b"])
    assert seen["node"]["loyaltyId"] == bought_at_b.loyalty_id
    hidden = await api.call(NODE, {"id": ids.encode("Member", enrolled_at_a.id)}, key=net["keys"]["b"])
    missing = await api.call(NODE, {"id": ids.encode("Member", 10**12)}, key=net["keys"]["b"])
    assert hidden == missing == {"node": None}  # forbidden reads exactly as "no such member"
    # The till lookup still works: the customer presents the loyalty ID.
    presented = await api.call(MEMBER, {"lid": enrolled_at_a.loyalty_id}, key=net["keys"]["c"])
    assert presented["member"]["id"] == ids.encode("Member", enrolled_at_a.id)


async def test_ids_are_opaque_stable_and_typed(api: Any, admin_key: str, keys: NetworkKeys, settings: Any) -> None:
    ids = keys.global_ids
    first, second = ids.encode("Member", 1), ids.encode("Member", 2)
    assert "Member" not in base64.urlsafe_b64decode(first + "==").decode("latin-1")
    assert first != second and len(first) == len(second) == 22
    assert ids.decode(first, "Member") == 1 and ids.decode(first, "Merchant") is None  # typed
    assert NetworkKeys.from_settings(settings).global_ids.encode("Member", 1) == first  # stable in a deployment
    assert NetworkKeys(b"another deployment").global_ids.decode(first, "Member") is None
    # one altered character is not an ID
    altered = first[:5] + ("B" if first[5] != "B" else "C") + first[6:]
    assert ids.decode(altered, "Member") is None
    # the last character carries 4 spare bits: only the spelling encode() made is accepted
    spellings = [first[:-1] + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"]
    assert [s for s in spellings if ids.decode(s, "Member") is not None] == [first]


async def test_cursors_are_opaque_and_checked(api: Any, admin_key: str, make_merchant: Any) -> None:
    for name in ("A", "B", "C"):
        await make_merchant(name=name)
    page = (await api.call(MERCHANTS, key=admin_key))["merchants"]
    cursor = page["pageInfo"]["endCursor"]
    assert b"cursor:" not in base64.urlsafe_b64decode(cursor + "==")
    following = (await api.call(MERCHANTS, {"after": cursor}, key=admin_key))["merchants"]
    assert [e["node"]["name"] for e in following["edges"]] == ["B"]
    forged = base64.b64encode(b"cursor:1").decode()
    body = await api.call(MERCHANTS, {"after": forged}, key=admin_key, expect_errors=True)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_CURSOR"]


CAPTURE = """mutation($hold: ID!, $points: Int, $key: String!) {
  captureRedemption(input: {holdId: $hold, points: $points, idempotencyKey: $key}) { userErrors { code message } } }"""
REVERSE = """mutation($id: ID!, $key: String!) {
  reverseTransaction(input: {transactionId: $id, idempotencyKey: $key}) { userErrors { code message } } }"""


async def test_refusals_do_not_give_away_the_number_inside_an_id(
        api: Any, db: Any, keys: NetworkKeys, make_merchant: Any, make_member: Any, ledger: Any) -> None:
    # The raw number of a hold or transaction counts the network's activity: an opaque ID
    # must not be opened by an error message.
    net = await small_network(db, make_merchant, make_member, ledger)
    lid, ids = net["members"][0].loyalty_id, keys.global_ids
    held = await ledger.authorize(merchant_id=net["b"].id, loyalty_id=lid, points=9, idempotency_key="h")
    earned = await ledger.earn(merchant_id=net["b"].id, loyalty_id=lid, purchase_amount_minor=500,
                               idempotency_key="e")
    await ledger.reverse(merchant_id=net["b"].id, transaction_id=earned.entry.id, idempotency_key="r")
    calls = [
        (CAPTURE, {"hold": ids.encode("Hold", held.hold.id), "points": 90, "key": "c1"}, "b"),  # exceeds
        (CAPTURE, {"hold": ids.encode("Hold", held.hold.id), "key": "c2"}, "a"),  # another merchant's
        (REVERSE, {"id": ids.encode("Transaction", earned.entry.id), "key": "r2"}, "b"),  # already reversed
        (REVERSE, {"id": ids.encode("Transaction", held.entry.id), "key": "r3"}, "b"),  # a HOLD
        (REVERSE, {"id": ids.encode("Transaction", earned.entry.id), "key": "r4"}, "c"),  # another merchant's
    ]
    numbers = {str(held.hold.id), str(earned.entry.id), str(held.entry.id)}
    for document, variables, shop in calls:
        data = await api.call(document, variables, key=net["keys"][shop])
        (errors,) = [payload["userErrors"] for payload in data.values()]
        assert errors, variables
        words = set(errors[0]["message"].replace(":", " ").replace(",", " ").split())
        assert not words & numbers, errors[0]["message"]
