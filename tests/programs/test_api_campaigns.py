"""createCampaign, campaigns and Campaign.result over the API: bounded input, a merchant's own only."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.programs.campaign_models import Campaign, CampaignAudience

ONBOARD = """mutation($name: String!) { onboardMerchant(input: {name: $name, earnRatePointsPerUnit: 1}) {
  apiKey userErrors { code } } }"""
ENROLL = """mutation($key: String!) { enrollMember(input: {idempotencyKey: $key}) { member { loyaltyId } } }"""
EARN = """mutation($lid: String!, $amount: Int!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key}) {
    transaction { points } userErrors { code } } }"""
CREATE = """mutation($input: CreateCampaignInput!) { createCampaign(input: $input) {
  campaign { id name kind multiplierPercent bonusPoints segment controlPercent startsAt endsAt merchant { name }
             result { asOf final treatedMembers controlMembers treatedSpendMinor controlSpendMinor liftPercent
                      pValue } }
  userErrors { field code message } } }"""
LIST = """{ campaigns(first: 10) { edges { node { id name merchant { name } } } } }"""
NODE = """query($id: ID!) { node(id: $id) { __typename ... on Campaign { name } } }"""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def campaign_input(**fields: Any) -> dict[str, Any]:
    return {"name": "Double days", "kind": "MULTIPLIER", "multiplierPercent": 200, "controlPercent": 20,
            "startsAt": now().isoformat(), "endsAt": (now() + dt.timedelta(days=7)).isoformat(),
            "idempotencyKey": "camp-1"} | fields


@pytest.fixture
async def shops(api: Any, admin_key: str) -> dict[str, str]:
    keys = {name: (await api.call(ONBOARD, {"name": name}, key=admin_key))["onboardMerchant"]["apiKey"]
            for name in ("Bakery", "Books")}
    for i in range(6):
        await api.call(ENROLL, {"key": f"m{i}"}, key=keys["Bakery"])
    return keys


async def campaign_rows(db: Any) -> tuple[int, int]:
    async with db.read() as conn:
        return ((await conn.execute(select(func.count()).select_from(Campaign))).scalar_one(),
                (await conn.execute(select(func.count()).select_from(CampaignAudience))).scalar_one())


async def test_a_merchant_creates_a_campaign_and_sees_only_its_own(api: Any, shops: dict[str, str],
                                                                   admin_key: str) -> None:
    given = campaign_input()
    created = (await api.call(CREATE, {"input": given}, key=shops["Bakery"]))["createCampaign"]
    assert created["userErrors"] == []
    campaign = created["campaign"]
    assert (campaign["kind"], campaign["multiplierPercent"], campaign["segment"]) == ("MULTIPLIER", 200, None)
    result = campaign["result"]
    assert result["treatedMembers"] + result["controlMembers"] == 6
    assert result["liftPercent"] is None and result["pValue"] is None  # groups far below the minimum
    assert result["final"] is False and dt.datetime.fromisoformat(result["asOf"]) <= now()  # counted on first read
    # a retry with the same key and input: the same campaign
    again = (await api.call(CREATE, {"input": given}, key=shops["Bakery"]))["createCampaign"]
    assert again["campaign"]["id"] == campaign["id"]
    # the bakery lists it, the bookshop neither lists nor fetches it, the admin sees it
    assert [e["node"]["id"] for e in (await api.call(LIST, key=shops["Bakery"]))["campaigns"]["edges"]] == [
        campaign["id"]]
    assert (await api.call(LIST, key=shops["Books"]))["campaigns"]["edges"] == []
    assert (await api.call(NODE, {"id": campaign["id"]}, key=shops["Books"]))["node"] is None
    assert (await api.call(NODE, {"id": campaign["id"]}, key=admin_key))["node"]["name"] == "Double days"


BAD_INPUTS = [
    ({"name": ""}, "INVALID_NAME"),
    ({"name": "x" * 101}, "INVALID_NAME"),
    ({"name": "bad\u202ename"}, "INVALID_NAME"),
    ({"multiplierPercent": None}, "INVALID_MULTIPLIER"),
    ({"multiplierPercent": 100}, "INVALID_MULTIPLIER"),
    ({"multiplierPercent": 0}, "INVALID_MULTIPLIER"),
    ({"multiplierPercent": -200}, "INVALID_MULTIPLIER"),
    ({"multiplierPercent": 2_000_000_000}, "INVALID_MULTIPLIER"),
    ({"bonusPoints": 5}, "INVALID_BONUS_POINTS"),
    ({"kind": "BONUS", "multiplierPercent": None}, "INVALID_BONUS_POINTS"),
    ({"kind": "BONUS", "multiplierPercent": None, "bonusPoints": 0}, "INVALID_BONUS_POINTS"),
    ({"kind": "BONUS", "multiplierPercent": None, "bonusPoints": -5}, "INVALID_BONUS_POINTS"),
    ({"kind": "BONUS", "multiplierPercent": None, "bonusPoints": 100_001}, "INVALID_BONUS_POINTS"),
    ({"kind": "BONUS", "bonusPoints": 5}, "INVALID_MULTIPLIER"),
    ({"segment": "WHALES"}, "INVALID_SEGMENT"),
    ({"segment": ""}, "INVALID_SEGMENT"),
    ({"controlPercent": -1}, "INVALID_CONTROL_PERCENT"),
    ({"controlPercent": 91}, "INVALID_CONTROL_PERCENT"),
    ({"controlPercent": 2_000_000_000}, "INVALID_CONTROL_PERCENT"),
    ({"endsAt": (now() - dt.timedelta(days=1)).isoformat()}, "INVALID_PERIOD"),
    ({"startsAt": (now() + dt.timedelta(days=8)).isoformat()}, "INVALID_PERIOD"),  # ends before it starts
    ({"endsAt": (now() + dt.timedelta(days=400)).isoformat()}, "INVALID_PERIOD"),
    ({"startsAt": (now() + dt.timedelta(days=400)).isoformat(),
      "endsAt": (now() + dt.timedelta(days=401)).isoformat()}, "INVALID_PERIOD"),
    ({"segment": "ACCESSIBLE"}, "SEGMENT_NOT_ANALYZED"),  # no analysis stored yet
    ({"idempotencyKey": ""}, "INVALID_IDEMPOTENCY_KEY"),
    ({"idempotencyKey": "k" * 129}, "INVALID_IDEMPOTENCY_KEY"),
]


@pytest.mark.parametrize(("change", "code"), BAD_INPUTS)
async def test_bad_input_is_refused_and_nothing_is_written(api: Any, shops: dict[str, str], db: Any,
                                                           change: dict[str, Any], code: str) -> None:
    body = await api.call(CREATE, {"input": campaign_input(**change)}, key=shops["Bakery"])
    payload = body["createCampaign"]
    assert payload["campaign"] is None
    assert [e["code"] for e in payload["userErrors"]] == [code]
    assert await campaign_rows(db) == (0, 0)


async def test_overlapping_campaigns_on_one_segment_are_refused(api: Any, shops: dict[str, str], db: Any) -> None:
    given = campaign_input()
    assert (await api.call(CREATE, {"input": given}, key=shops["Bakery"]))["createCampaign"]["campaign"]
    before = await campaign_rows(db)
    later = {"startsAt": (now() + dt.timedelta(days=6)).isoformat(),
             "endsAt": (now() + dt.timedelta(days=9)).isoformat()}
    refused = (await api.call(CREATE, {"input": campaign_input(idempotencyKey="camp-2", **later)},
                              key=shops["Bakery"]))["createCampaign"]
    assert [e["code"] for e in refused["userErrors"]] == ["OVERLAPPING_CAMPAIGN"]
    assert await campaign_rows(db) == before
    # the same key with other input is a conflict; another merchant may run its own at the same time
    conflict = (await api.call(CREATE, {"input": {**given, "name": "Other"}}, key=shops["Bakery"]))
    assert [e["code"] for e in conflict["createCampaign"]["userErrors"]] == ["IDEMPOTENCY_KEY_CONFLICT"]
    assert (await api.call(CREATE, {"input": campaign_input()}, key=shops["Books"]))["createCampaign"]["campaign"]
    # after the first ends, a new one may start
    after = {"startsAt": (now() + dt.timedelta(days=8)).isoformat(),
             "endsAt": (now() + dt.timedelta(days=9)).isoformat()}
    assert (await api.call(CREATE, {"input": campaign_input(idempotencyKey="camp-3", **after)},
                           key=shops["Bakery"]))["createCampaign"]["campaign"]


async def test_concurrent_overlapping_creates_make_one_campaign(api: Any, shops: dict[str, str], db: Any) -> None:
    bodies = await asyncio.gather(*(api.call(CREATE, {"input": campaign_input(idempotencyKey=f"race-{i}")},
                                             key=shops["Bakery"]) for i in range(8)))
    made = [b["createCampaign"] for b in bodies if b["createCampaign"]["campaign"]]
    refused = {e["code"] for b in bodies for e in b["createCampaign"]["userErrors"]}
    assert len(made) == 1 and refused == {"OVERLAPPING_CAMPAIGN"}
    assert (await campaign_rows(db))[0] == 1


async def test_members_and_anonymous_callers_may_not_create_or_list(api: Any, shops: dict[str, str],
                                                                    admin_key: str) -> None:
    for key in (None, admin_key):
        body = await api.call(CREATE, {"input": campaign_input()}, key=key, expect_errors=True)
        assert body["data"] is None or body["data"]["createCampaign"] is None
    body = await api.call(LIST, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_offer_applies_to_treated_members_earning_over_the_api(api: Any, shops: dict[str, str],
                                                                         db: Any) -> None:
    created = (await api.call(CREATE, {"input": campaign_input(kind="BONUS", multiplierPercent=None,
                                                               bonusPoints=7, controlPercent=0)},
                              key=shops["Bakery"]))["createCampaign"]["campaign"]
    assert created["result"]["controlMembers"] == 0
    async with db.read() as conn:
        from coalition.members.models import Member
        lid = (await conn.execute(select(Member.loyalty_id).limit(1))).scalar_one()
    earned = (await api.call(EARN, {"lid": lid, "amount": 1000, "key": "e1"}, key=shops["Bakery"]))["earnPoints"]
    assert earned["transaction"]["points"] == 17
    elsewhere = (await api.call(EARN, {"lid": lid, "amount": 1000, "key": "e1"}, key=shops["Books"]))["earnPoints"]
    assert elsewhere["transaction"]["points"] == 10
