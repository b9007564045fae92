"""onboardMerchant and setNetworkPolicy take an optional idempotency key (coalition/ledger/idempotency.py):
a retry replays the first answer, other input under the key is IDEMPOTENCY_KEY_CONFLICT, nothing is
written twice, and of concurrent calls with one key exactly one writes (on PostgreSQL for real)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from coalition.auth.models import ApiKey
from coalition.partners.models import Merchant
from coalition.partners.service import onboard_merchant
from coalition.settlement.models import NetworkPolicy
from coalition.settlement.policy import set_policy

ONBOARD = """mutation($input: OnboardMerchantInput!) { onboardMerchant(input: $input) {
  merchant { id name category earnRatePointsPerUnit } apiKey userErrors { field code } } }"""
SET_POLICY = """mutation($input: SetNetworkPolicyInput!) { setNetworkPolicy(input: $input) {
  policy { version pointValueMinor effectiveFrom } userErrors { field code } } }"""
POLICY = "{ networkPolicy { version pointValueMinor } }"


async def count(db: Any, model: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload["userErrors"]]


async def test_a_retried_onboarding_replays_the_merchant_without_showing_its_key_again(
        api: Any, admin_key: str, db: Any) -> None:
    first = {"name": "Bakery Ana", "category": "food", "earnRatePointsPerUnit": 3, "idempotencyKey": "onb-1"}
    written = (await api.call(ONBOARD, {"input": first}, key=admin_key))["onboardMerchant"]
    assert written["userErrors"] == [] and written["apiKey"]
    merchants, api_keys = await count(db, Merchant), await count(db, ApiKey)

    again = (await api.call(ONBOARD, {"input": first}, key=admin_key))["onboardMerchant"]
    # the same merchant; its API key was shown once and is stored hashed, so a replay does not carry it
    assert again == {**written, "apiKey": None}
    assert (await count(db, Merchant), await count(db, ApiKey)) == (merchants, api_keys)

    for other in ({"name": "Bakery Bob"}, {"category": "drinks"}, {"earnRatePointsPerUnit": 4}):
        conflict = (await api.call(ONBOARD, {"input": first | other}, key=admin_key))["onboardMerchant"]
        assert conflict["merchant"] is None and conflict["apiKey"] is None
        assert codes(conflict) == ["IDEMPOTENCY_KEY_CONFLICT"]
    assert (await count(db, Merchant), await count(db, ApiKey)) == (merchants, api_keys)

    # another key, or none (as every client before the key): another merchant, as before
    for extra in ({"idempotencyKey": "onb-2"}, {}):
        other = (await api.call(ONBOARD, {"input": {"name": "Bakery Ana"} | extra}, key=admin_key))["onboardMerchant"]
        assert other["userErrors"] == [] and other["apiKey"] and other["merchant"]["id"] != written["merchant"]["id"]
    assert await count(db, Merchant) == merchants + 2


async def test_a_bad_onboarding_key_is_refused_and_nothing_is_written(api: Any, admin_key: str, db: Any) -> None:
    for bad in ("", " ", "x" * 129, "a\x1fb"):
        payload = (await api.call(ONBOARD, {"input": {"name": "Shop", "idempotencyKey": bad}},
                                  key=admin_key))["onboardMerchant"]
        assert payload["merchant"] is None and codes(payload) == ["INVALID_IDEMPOTENCY_KEY"]
    assert await count(db, Merchant) == 0


async def test_concurrent_onboardings_with_one_key_create_one_merchant(db: Any) -> None:
    results = await asyncio.gather(*(onboard_merchant(db, name="Shop", idempotency_key="race") for _ in range(6)))
    assert len({result.merchant.id for result in results}) == 1
    assert [result.replayed for result in results].count(False) == 1
    assert [bool(result.api_key) for result in results].count(True) == 1
    assert (await count(db, Merchant), await count(db, ApiKey)) == (1, 1)


async def test_a_retried_policy_replays_the_version_it_wrote_and_other_input_under_its_key_is_refused(
        api: Any, admin_key: str, db: Any) -> None:
    first = {"pointValueMinor": 2, "idempotencyKey": "pol-1"}
    written = (await api.call(SET_POLICY, {"input": first}, key=admin_key))["setNetworkPolicy"]
    assert written["userErrors"] == [] and written["policy"]["pointValueMinor"] == 2
    newer = (await api.call(SET_POLICY, {"input": {"pointValueMinor": 3, "idempotencyKey": "pol-2"}},
                            key=admin_key))["setNetworkPolicy"]
    assert newer["userErrors"] == []
    # a retry of the first (its answer was lost) replays it: not appended again over the newer one, and
    # not refused for starting before the newer version
    again = (await api.call(SET_POLICY, {"input": first}, key=admin_key))["setNetworkPolicy"]
    assert again == written
    assert (await api.call(POLICY))["networkPolicy"]["pointValueMinor"] == 3
    assert await count(db, NetworkPolicy) == 2

    conflict = (await api.call(SET_POLICY, {"input": first | {"pointValueMinor": 5}},
                               key=admin_key))["setNetworkPolicy"]
    assert conflict["policy"] is None and codes(conflict) == ["IDEMPOTENCY_KEY_CONFLICT"]
    assert await count(db, NetworkPolicy) == 2

    # without a key, as every client before the key: appended each time, as before
    for _ in range(2):
        plain = (await api.call(SET_POLICY, {"input": {"pointValueMinor": 4}}, key=admin_key))["setNetworkPolicy"]
        assert plain["userErrors"] == []
    assert await count(db, NetworkPolicy) == 4


async def test_a_refused_policy_under_a_key_writes_nothing_and_leaves_the_key_free(
        api: Any, admin_key: str, db: Any) -> None:
    bad = (await api.call(SET_POLICY, {"input": {"pointValueMinor": -1, "idempotencyKey": "pol-1"}},
                          key=admin_key))["setNetworkPolicy"]
    assert bad["policy"] is None and codes(bad) == ["INVALID_POINT_VALUE"]
    assert await count(db, NetworkPolicy) == 0
    fixed = (await api.call(SET_POLICY, {"input": {"pointValueMinor": 1, "idempotencyKey": "pol-1"}},
                            key=admin_key))["setNetworkPolicy"]
    assert fixed["userErrors"] == [] and await count(db, NetworkPolicy) == 1


async def test_concurrent_policy_changes_with_one_key_append_one_version(db: Any, settings: Any) -> None:
    results = await asyncio.gather(*(set_policy(db, settings, point_value_minor=7, idempotency_key="race")
                                     for _ in range(6)))
    assert len({policy.id for policy in results}) == 1 and results[0].point_value_minor == 7
    assert await count(db, NetworkPolicy) == 1
