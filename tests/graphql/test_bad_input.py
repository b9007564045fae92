"""Bad input gets a 4xx or a ``userErrors`` code, writes nothing and logs nothing private (issue 13, item 6).

Each case here was an HTTP 500 or an ``INTERNAL_SERVER_ERROR`` before: naive datetimes, lone
surrogates, NUL in strings PostgreSQL cannot store, a superscript digit in a report URL,
numbers beyond 64 bits in cursors. ``test_fuzz.py`` looks for the ones nobody listed.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.ledger.models import Entry
from coalition.members.models import Member
from coalition.partners.models import Merchant

POLICY_AT = """query($at: DateTime) { networkPolicy(at: $at) { version effectiveFrom } }"""
SET_POLICY = """mutation($from: DateTime) { setNetworkPolicy(input: {pointValueMinor: 2, effectiveFrom: $from}) {
  policy { version } userErrors { field code message } } }"""
RUN = """mutation($end: DateTime!) { runSettlement(input: {periodEnd: $end, idempotencyKey: "run-1"}) {
  batch { id } userErrors { field code message } } }"""
ENROLL = """mutation($key: String!, $email: String, $phone: String, $ref: String) {
  enrollMember(input: {idempotencyKey: $key, email: $email, phone: $phone, referralCode: $ref}) {
    member { loyaltyId } userErrors { field code message } } }"""
EARN = """mutation($lid: String!, $amount: Int!, $key: String!, $ref: String) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key, reference: $ref}) {
    transaction { id } userErrors { field code message } } }"""
ONBOARD = """mutation($name: String!, $category: String) { onboardMerchant(input: {name: $name, category: $category}) {
  merchant { id } userErrors { field code message } } }"""
MEMBER_TRANSACTIONS = """query($lid: String!, $after: String) { member(loyaltyId: $lid) {
  transactions(first: 5, after: $after) { edges { cursor } } } }"""
NETWORK = "query Net { network { name } }"

NAIVE = ["2026-01-05T12:00:00", "2026-01-05", "2026-01-05 12:00"]


async def post(api: Any, body: dict[str, Any], key: str | None = None) -> Any:
    """POST ``body`` as a hostile client would: lone surrogates as JSON escapes (``"\\ud800"``)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return await api.client.post("/graphql", content=json.dumps(body, ensure_ascii=True).encode(), headers=headers)


def codes(body: dict[str, Any]) -> list[str]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]


@pytest.fixture
async def shop(make_merchant: Any, make_member: Any) -> Any:
    onboarded = await make_merchant("Bakery")
    member = (await make_member(onboarded.merchant.id, email="ann.smith@example.com")).member
    return onboarded.api_key, member.loyalty_id


async def count(db: Any, table: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


# -- datetimes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("naive", NAIVE)
async def test_a_datetime_without_an_offset_is_refused_as_bad_input(api: Any, naive: str) -> None:
    response = await post(api, {"query": POLICY_AT, "variables": {"at": naive}})
    assert response.status_code == 200
    assert codes(response.json()) == ["BAD_USER_INPUT"], response.json()
    assert "offset" in response.json()["errors"][0]["message"]


async def test_a_datetime_literal_without_an_offset_is_refused_too(api: Any) -> None:
    response = await post(api, {"query": '{ networkPolicy(at: "2026-01-05T12:00:00") { version } }'})
    assert response.status_code == 200
    assert codes(response.json()) == ["GRAPHQL_VALIDATION_FAILED"], response.json()


async def test_a_datetime_with_an_offset_still_works(api: Any) -> None:
    data = (await post(api, {"query": POLICY_AT, "variables": {"at": "2026-01-05T12:00:00+01:00"}})).json()
    assert "errors" not in data and data["data"]["networkPolicy"] is not None


@pytest.mark.parametrize("naive", NAIVE[:1])
async def test_set_network_policy_refuses_a_naive_effective_from_and_writes_nothing(
        api: Any, admin_key: str, naive: str) -> None:
    before = (await post(api, {"query": POLICY_AT})).json()["data"]["networkPolicy"]["version"]
    response = await post(api, {"query": SET_POLICY, "variables": {"from": naive}}, admin_key)
    assert response.status_code == 200 and codes(response.json()) == ["BAD_USER_INPUT"], response.json()
    assert (await post(api, {"query": POLICY_AT})).json()["data"]["networkPolicy"]["version"] == before


async def test_run_settlement_refuses_a_naive_period_end(api: Any, admin_key: str) -> None:
    response = await post(api, {"query": RUN, "variables": {"end": "2026-01-05T00:00:00"}}, admin_key)
    assert response.status_code == 200 and codes(response.json()) == ["BAD_USER_INPUT"], response.json()


# -- lone surrogates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"query": NETWORK, "variables": {"x": "\ud800"}},
    {"query": NETWORK, "variables": {"\udc00": 1}},
    {"query": NETWORK + " # \ud800"},
    {"query": NETWORK, "operationName": "Net\udfff"},
    {"query": NETWORK, "extensions": {"a": ["\ud83d"]}},
], ids=["variable", "variable-name", "query", "operationName", "extensions"])
async def test_a_lone_surrogate_anywhere_in_the_body_is_a_400(api: Any, body: dict[str, Any]) -> None:
    response = await post(api, body)
    assert response.status_code == 400, response.text
    assert codes(response.json()) == ["BAD_REQUEST"]
    assert "Unicode" in response.json()["errors"][0]["message"]


async def test_a_lone_surrogate_in_a_get_request_is_a_400(api: Any) -> None:
    response = await api.client.get("/graphql", params={"query": NETWORK, "variables": '{"x": "\\ud800"}'})
    assert response.status_code == 400 and codes(response.json()) == ["BAD_REQUEST"]


async def test_a_surrogate_pair_is_fine(api: Any, shop: Any) -> None:
    key, lid = shop
    response = await post(api, {"query": EARN, "variables": {"lid": lid, "amount": 100, "key": "k-emoji",
                                                               "ref": "\ud83d\ude00"}}, key)
    assert response.status_code == 200 and response.json()["data"]["earnPoints"]["userErrors"] == []


# -- NUL and other control characters -----------------------------------------------------------------

@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "k\x1b[31m", "k\x7f"])
async def test_a_control_character_in_an_idempotency_key_is_a_user_error(
        api: Any, db: Any, shop: Any, bad: str) -> None:
    key, lid = shop
    entries = await count(db, Entry)
    data = (await post(api, {"query": EARN, "variables": {"lid": lid, "amount": 100, "key": bad}}, key)).json()
    assert data["data"]["earnPoints"]["userErrors"][0]["code"] == "INVALID_IDEMPOTENCY_KEY", data
    assert await count(db, Entry) == entries


@pytest.mark.parametrize(("variables", "code"), [
    ({"key": "e\x00", "email": "x@example.com"}, "INVALID_IDEMPOTENCY_KEY"),
    ({"key": "e-1", "email": "nul\x00@example.com"}, "INVALID_EMAIL"),
    ({"key": "e-2", "email": "rtl\u202e@example.com"}, "INVALID_EMAIL"),
    ({"key": "e-3", "phone": "+44\x00 7700 900123"}, "INVALID_PHONE"),
    ({"key": "e-4", "ref": "AB\x00CD"}, "REFERRAL_CODE_NOT_FOUND"),
])
async def test_enrollment_refuses_control_characters_and_writes_nothing(
        api: Any, db: Any, shop: Any, variables: dict[str, Any], code: str) -> None:
    key, _ = shop
    members = await count(db, Member)
    data = (await post(api, {"query": ENROLL, "variables": variables}, key)).json()
    assert [e["code"] for e in data["data"]["enrollMember"]["userErrors"]] == [code], data
    assert await count(db, Member) == members


async def test_a_reference_with_a_nul_is_a_user_error(api: Any, db: Any, shop: Any) -> None:
    key, lid = shop
    data = (await post(api, {"query": EARN, "variables": {"lid": lid, "amount": 100, "key": "k1",
                                                          "ref": "till\x00 4"}}, key)).json()
    assert data["data"]["earnPoints"]["userErrors"][0]["code"] == "INVALID_REFERENCE", data


@pytest.mark.parametrize("variables", [{"name": "Shop\x00"}, {"name": "Shop", "category": "food\x00"}])
async def test_merchant_names_and_categories_refuse_a_nul(api: Any, db: Any, admin_key: str,
                                                          variables: dict[str, Any]) -> None:
    merchants = await count(db, Merchant)
    data = (await post(api, {"query": ONBOARD, "variables": variables}, admin_key)).json()
    assert data["data"]["onboardMerchant"]["userErrors"], data
    assert await count(db, Merchant) == merchants


@pytest.mark.parametrize("lid", ["LX\x00", "²²²²-²²²²", "\x00"])
async def test_a_malformed_loyalty_id_is_bad_input(api: Any, shop: Any, lid: str) -> None:
    key, _ = shop
    body = (await post(api, {"query": MEMBER_TRANSACTIONS, "variables": {"lid": lid}}, key)).json()
    assert "INTERNAL_SERVER_ERROR" not in codes(body), body


# -- numbers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["cursor:99999999999999999999", "cursor:9223372036854775808", "cursor:²"])
async def test_a_cursor_beyond_64_bits_is_bad_input(api: Any, shop: Any, raw: str) -> None:
    key, lid = shop
    after = base64.b64encode(raw.encode()).decode()
    body = (await post(api, {"query": MEMBER_TRANSACTIONS, "variables": {"lid": lid, "after": after}}, key)).json()
    assert codes(body) == ["INVALID_CURSOR"], body


@pytest.mark.parametrize("amount", [0, -1, 2**31 - 1])
async def test_amounts_at_the_bounds_are_user_errors_or_work(api: Any, shop: Any, amount: int) -> None:
    key, lid = shop
    response = await post(api, {"query": EARN, "variables": {"lid": lid, "amount": amount, "key": f"a{amount}"}}, key)
    assert response.status_code == 200 and "errors" not in response.json(), response.json()


@pytest.mark.parametrize("amount", [2**31, 2**63, 10**30, 1.5, "100"])
async def test_amounts_beyond_int_are_bad_user_input(api: Any, shop: Any, amount: Any) -> None:
    key, lid = shop
    response = await post(api, {"query": EARN, "variables": {"lid": lid, "amount": amount, "key": "b"}}, key)
    assert response.status_code == 200 and codes(response.json()) == ["BAD_USER_INPUT"], response.json()


# -- the log --------------------------------------------------------------------------------------------

async def test_bad_input_logs_no_contact_data(api: Any, shop: Any, caplog: pytest.LogCaptureFixture) -> None:
    # given the log captured at every level
    caplog.set_level(logging.DEBUG)
    key, _ = shop
    contacts = ["ann.smith", "bob.jones", "7700900123", "7700 900123"]
    # when contact data arrives malformed in every way we know
    for n, variables in enumerate([
        {"email": "ann.smith\ud800@example.com"}, {"email": "ann.smith\x00@example.com"},
        {"email": "bob.jones@example\u202e.com"}, {"phone": "+44 7700 900123\ud800"},
        {"phone": "+44 7700 900123\x00"}, {"email": "bob.jones@example.com", "ref": "\ud800"},
        {"email": "ann.smith@example.com"},  # already enrolled
    ]):
        await post(api, {"query": ENROLL, "variables": {"key": f"log-{n}", **variables}}, key)
        await post(api, {"query": ENROLL, "variables": {"key": f"log-{n}\x00", **variables}}, key)
    # then no log line carries any of it
    for record in caplog.records:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for contact in contacts:
            assert contact not in text, f"{record.name} logged contact data: {text[:300]}"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- report URLs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/statements/²1.json?merchant=1", "/statements/¹.csv?merchant=1",
                                  "/statements/٣.html?merchant=1",
                                  "/admin/settlement/²/report.json", "/admin/settlement?before=²",
                                  "/statements/1.json?merchant=²"])
async def test_a_superscript_digit_in_a_report_url_is_a_4xx(api: Any, admin_key: str, path: str) -> None:
    response = await api.client.get(path, headers={"Authorization": f"Bearer {admin_key}"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.json()["errors"][0]["extensions"]["code"].startswith("INVALID_")


@pytest.mark.parametrize("query", ["pointValueMinor=²", "pointValueMinor=-²", "periodEnd=2026-01-05T00:00:00",
                                   "periodEnd=2026-01-05", "pointValueMinor=99999999999999999999999"])
async def test_the_simulation_page_refuses_bad_numbers_and_naive_dates(api: Any, admin_key: str, query: str) -> None:
    response = await api.client.get(f"/admin/settlement/simulate.html?{query}",
                                    headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 400, (response.status_code, response.text)


# -- behind the HTTP layer ------------------------------------------------------------------------

@pytest.mark.parametrize(("contact", "code"), [
    ({"email": "ann.smith\ud800@example.com"}, "INVALID_EMAIL"),
    ({"email": "ann.smith\x00@example.com"}, "INVALID_EMAIL"),
    ({"phone": "+44 7700 900123\udfff"}, "INVALID_PHONE"), ({"phone": "+٤٤٧٧٠٠٩٠٠١٢٣"}, "INVALID_PHONE"),
    ({"phone": "+44 7700 900123²"}, "INVALID_PHONE"),
])
async def test_the_enrollment_service_refuses_what_the_http_layer_would_and_never_quotes_it(
        make_merchant: Any, make_member: Any, db: Any, contact: dict[str, str], code: str) -> None:
    # Strings can reach a service without passing the HTTP layer (the CLI, a job, a GraphQL literal).
    from coalition.errors import InvalidInput

    merchant = (await make_merchant("Bakery")).merchant
    with pytest.raises(InvalidInput) as refused:
        await make_member(merchant.id, **contact)
    assert refused.value.code == code
    assert "ann.smith" not in refused.value.message and "7700" not in refused.value.message
    assert await count(db, Member) == 0
