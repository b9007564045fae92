"""setTierPolicy (admin), tierPolicy (anyone) and Member.tierStatus over the API."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.programs.tier_models import MemberTier, TierPolicyVersion

ONBOARD = """mutation { onboardMerchant(input: {name: "Bakery", earnRatePointsPerUnit: 1}) { apiKey } }"""
ENROLL = """mutation { enrollMember(input: {idempotencyKey: "m1"}) { member { loyaltyId } } }"""
EARN = """mutation($lid: String!, $amount: Int!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key}) {
    transaction { points } userErrors { code } } }"""
SET = """mutation($input: SetTierPolicyInput!) { setTierPolicy(input: $input) {
  policy { tiers { name thresholdPoints multiplierPercent } window windowMonths graceDays bonusFunder }
  userErrors { field code } } }"""
POLICY = """{ tierPolicy { tiers { name thresholdPoints } window } }"""
STATUS = """query($lid: String!) { member(loyaltyId: $lid) {
  tier tierStatus { name qualifyingPoints nextTier pointsToNextTier validUntil since } } }"""
LADDER = [{"name": "BASIC", "thresholdPoints": 0}, {"name": "SILVER", "thresholdPoints": 100, "multiplierPercent": 150},
          {"name": "GOLD", "thresholdPoints": 500, "multiplierPercent": 200}]


@pytest.fixture
async def shop(api: Any, admin_key: str) -> dict[str, str]:
    key = (await api.call(ONBOARD, key=admin_key))["onboardMerchant"]["apiKey"]
    lid = (await api.call(ENROLL, key=key))["enrollMember"]["member"]["loyaltyId"]
    return {"key": key, "lid": lid}


async def test_an_admin_sets_tiers_and_a_member_moves_up_with_what_it_earns(api: Any, admin_key: str,
                                                                            shop: dict[str, str]) -> None:
    # before any policy: the default ladder, BASIC with nothing earned
    status = (await api.call(STATUS, {"lid": shop["lid"]}, key=shop["key"]))["member"]["tierStatus"]
    assert (status["name"], status["qualifyingPoints"], status["nextTier"]) == ("BASIC", 0, "SILVER")
    set_ = (await api.call(SET, {"input": {"tiers": LADDER, "window": "CALENDAR_YEAR", "graceDays": 30,
                                                    "idempotencyKey": "p1"}},
                           key=admin_key))["setTierPolicy"]
    assert set_["userErrors"] == [] and set_["policy"]["window"] == "CALENDAR_YEAR"
    assert [t["multiplierPercent"] for t in set_["policy"]["tiers"]] == [100, 150, 200]
    # anyone with a key (and anonymous callers) read the ladder
    assert len((await api.call(POLICY))["tierPolicy"]["tiers"]) == 3
    await api.call(EARN, {"lid": shop["lid"], "amount": 12_000, "key": "e1"}, key=shop["key"])
    status = (await api.call(STATUS, {"lid": shop["lid"]}, key=shop["key"]))["member"]["tierStatus"]
    assert (status["name"], status["qualifyingPoints"], status["nextTier"], status["pointsToNextTier"]) == (
        "SILVER", 120, "GOLD", 380)
    assert status["validUntil"] is not None


@pytest.mark.parametrize(("change", "code"), [
    ({"tiers": []}, "INVALID_TIERS"),
    ({"tiers": [{"name": "BASIC", "thresholdPoints": 10}]}, "INVALID_THRESHOLD"),
    ({"tiers": [LADDER[0], {"name": "SILVER", "thresholdPoints": -1}]}, "INVALID_THRESHOLD"),
    ({"tiers": [LADDER[0], {"name": "SILVER", "thresholdPoints": 5, "multiplierPercent": 0}]}, "INVALID_MULTIPLIER"),
    ({"tiers": [LADDER[0], {"name": "SILVER", "thresholdPoints": 5, "multiplierPercent": 2_000_000_000}]},
     "INVALID_MULTIPLIER"),
    ({"tiers": [{"name": "x y", "thresholdPoints": 0}]}, "INVALID_TIER_NAME"),
    ({"tiers": LADDER, "window": "FOREVER"}, "INVALID_WINDOW"),
    ({"tiers": LADDER, "windowMonths": 0}, "INVALID_WINDOW"),
    ({"tiers": LADDER, "graceDays": -3}, "INVALID_GRACE_DAYS"),
    ({"tiers": LADDER, "bonusFunder": "MEMBER"}, "INVALID_BONUS_FUNDER"),
    ({"tiers": LADDER, "idempotencyKey": ""}, "INVALID_IDEMPOTENCY_KEY"),
])
async def test_bad_policy_input_is_refused_and_nothing_is_written(api: Any, admin_key: str, db: Any,
                                                                  change: dict[str, Any], code: str) -> None:
    payload = (await api.call(SET, {"input": {"idempotencyKey": "p1"} | change}, key=admin_key))["setTierPolicy"]
    assert payload["policy"] is None and [e["code"] for e in payload["userErrors"]] == [code]
    async with db.read() as conn:
        for table in (TierPolicyVersion, MemberTier):
            assert (await conn.execute(select(func.count()).select_from(table))).scalar_one() == 0


async def test_only_an_admin_sets_the_tiers(api: Any, shop: dict[str, str]) -> None:
    for key in (shop["key"], None):
        body = await api.call(SET, {"input": {"tiers": LADDER, "idempotencyKey": "p1"}}, key=key,
                              expect_errors=True)
        assert body["data"] is None or body["data"]["setTierPolicy"] is None
        assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "UNAUTHENTICATED"}


async def test_a_retried_policy_replays_the_version_it_wrote_and_other_input_under_its_key_is_refused(
        api: Any, admin_key: str, db: Any) -> None:
    first = {"tiers": LADDER, "graceDays": 30, "idempotencyKey": "p1"}
    written = (await api.call(SET, {"input": first}, key=admin_key))["setTierPolicy"]
    newer = (await api.call(SET, {"input": {"tiers": LADDER[:2], "idempotencyKey": "p2"}},
                            key=admin_key))["setTierPolicy"]
    # a retry of the first (its answer was lost) replays it; it does not append it again over the newer one
    again = (await api.call(SET, {"input": first}, key=admin_key))["setTierPolicy"]
    assert again == written and newer["userErrors"] == []
    assert len((await api.call(POLICY))["tierPolicy"]["tiers"]) == 2
    conflict = (await api.call(SET, {"input": first | {"graceDays": 31}}, key=admin_key))["setTierPolicy"]
    assert conflict["policy"] is None and [e["code"] for e in conflict["userErrors"]] == ["IDEMPOTENCY_KEY_CONFLICT"]
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(TierPolicyVersion))).scalar_one() == 2
