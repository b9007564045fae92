"""The webhooks API: register (secret once), list with deliveries, replay, delete; who may."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from coalition.config import Settings

CREATE = """mutation($url: String!, $events: [String!]!, $key: String!) {
  createWebhookEndpoint(input: {url: $url, events: $events, idempotencyKey: $key}) {
    endpoint { id url events active } secret userErrors { field code message } } }"""
LIST = """{ webhookEndpoints { edges { node { id url active disabledReason
  deliveries { edges { node { id eventId type status attempts } } } } } } }"""
REPLAY = """mutation($id: ID!) { replayWebhookDelivery(input: {deliveryId: $id}) {
  delivery { id status } userErrors { code } } }"""
DELETE = """mutation($id: ID!) { deleteWebhookEndpoint(input: {endpointId: $id}) {
  deletedEndpointId userErrors { code } } }"""
EARN = """mutation($lid: String!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: 1000, idempotencyKey: $key}) {
    transaction { id } userErrors { code } } }"""
EVENTS = ["points.earned", "member.enrolled"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, webhook_allowed_hosts=frozenset({"127.0.0.1"}), webhook_cache_s=0.0)


async def test_a_merchant_registers_sees_its_deliveries_replays_and_deletes(
    api: Any, make_merchant: Any, make_member: Any,
) -> None:
    # Given a merchant with an endpoint
    shop, other = await make_merchant("Shop"), await make_merchant("Other")
    made = (await api.call(CREATE, {"url": "http://127.0.0.1:9/h", "events": EVENTS, "key": "k"},
                           key=shop.api_key))["createWebhookEndpoint"]
    assert made["userErrors"] == [] and made["secret"].startswith("whsec_") and made["endpoint"]["active"]
    again = (await api.call(CREATE, {"url": "http://127.0.0.1:9/h", "events": EVENTS, "key": "k"},
                            key=shop.api_key))["createWebhookEndpoint"]
    assert again["endpoint"]["id"] == made["endpoint"]["id"] and again["secret"] == made["secret"]
    # When it earns for a member through the API
    member = (await make_member(shop.merchant.id)).member
    assert (await api.call(EARN, {"lid": member.loyalty_id, "key": "e1"}, key=shop.api_key))["earnPoints"][
        "userErrors"] == []
    # Then the event is in its outbox, listed with its status; the other merchant sees nothing
    listed = (await api.call(LIST, key=shop.api_key))["webhookEndpoints"]["edges"]
    deliveries = [d["node"] for d in listed[0]["node"]["deliveries"]["edges"]]
    assert [d["type"] for d in deliveries] == ["points.earned"]  # enrolled outside the app's process
    assert deliveries[0]["status"] == "PENDING" and deliveries[0]["eventId"].startswith("evt_")
    assert (await api.call(LIST, key=other.api_key))["webhookEndpoints"]["edges"] == []
    # the other merchant can neither replay nor delete them
    refused = await api.call(REPLAY, {"id": deliveries[0]["id"]}, key=other.api_key)
    assert refused["replayWebhookDelivery"]["userErrors"] == [{"code": "WEBHOOK_DELIVERY_NOT_FOUND"}]
    refused = await api.call(DELETE, {"id": made["endpoint"]["id"]}, key=other.api_key)
    assert refused["deleteWebhookEndpoint"]["userErrors"] == [{"code": "WEBHOOK_ENDPOINT_NOT_FOUND"}]
    replayed = (await api.call(REPLAY, {"id": deliveries[0]["id"]}, key=shop.api_key))["replayWebhookDelivery"]
    assert replayed == {"delivery": {"id": deliveries[0]["id"], "status": "PENDING"}, "userErrors": []}
    deleted = (await api.call(DELETE, {"id": made["endpoint"]["id"]}, key=shop.api_key))["deleteWebhookEndpoint"]
    assert deleted == {"deletedEndpointId": made["endpoint"]["id"], "userErrors": []}
    assert (await api.call(LIST, key=shop.api_key))["webhookEndpoints"]["edges"] == []
    assert (await api.call(EARN, {"lid": member.loyalty_id, "key": "e2"}, key=shop.api_key))["earnPoints"][
        "userErrors"] == []


@pytest.mark.parametrize(("url", "events", "code"), [
    ("ftp://example.com/", EVENTS, "INVALID_URL"),
    ("not a url", EVENTS, "INVALID_URL"),
    ("http://10.0.0.8/h", EVENTS, "URL_NOT_ALLOWED"),
    ("http://169.254.169.254/", EVENTS, "URL_NOT_ALLOWED"),
    ("http://[::1]/", EVENTS, "URL_NOT_ALLOWED"),
    ("http://localhost/", EVENTS, "URL_NOT_ALLOWED"),
    ("http://127.0.0.1:9/h", ["points.stolen"], "UNKNOWN_EVENT_TYPE"),
    ("http://127.0.0.1:9/h", [], "NO_EVENT_TYPES"),
])
async def test_bad_registrations_are_user_errors(api: Any, make_merchant: Any, url: str, events: list[str],
                                                 code: str) -> None:
    shop = await make_merchant()
    body = (await api.call(CREATE, {"url": url, "events": events, "key": "k"}, key=shop.api_key))
    assert body["createWebhookEndpoint"]["endpoint"] is None
    assert [e["code"] for e in body["createWebhookEndpoint"]["userErrors"]] == [code]
    assert (await api.call(LIST, key=shop.api_key))["webhookEndpoints"]["edges"] == []


async def test_members_and_anonymous_callers_may_not(api: Any, make_merchant: Any, make_member: Any) -> None:
    shop = await make_merchant()
    member = await make_member(shop.merchant.id)
    for key in (member.member_token, None):
        body = await api.call(CREATE, {"url": "http://127.0.0.1:9/h", "events": EVENTS, "key": "k"}, key=key,
                              expect_errors=True)
        assert body["data"] is None or body["data"]["createWebhookEndpoint"] is None
        assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "UNAUTHENTICATED"}
        body = await api.call(LIST, key=key, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "UNAUTHENTICATED"}
