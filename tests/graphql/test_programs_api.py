"""The programs through the API: a merchant publishes a reward and a stamp card, an admin a quest; earnPoints
stamps and counts visits; the member claims from the wallet; the till uses the voucher."""

from __future__ import annotations

import datetime as dt
from typing import Any

CREATE_REWARD = """mutation($input: CreateRewardInput!) { createReward(input: $input) {
  reward { id name pointsCost active stockLeft merchant { name } } userErrors { code field message } } }"""
CLAIM = """mutation($input: ClaimRewardInput!) { claimReward(input: $input) {
  voucher { id code status points expiresAt reward { name } member { balance } } member { balance }
  userErrors { code field } } }"""
USE = """mutation($input: UseVoucherInput!) { useVoucher(input: $input) {
  voucher { status } userErrors { code field } } }"""
CREATE_CARD = """mutation($input: CreateStampCardInput!) { createStampCard(input: $input) {
  stampCard { id stampsRequired minPurchaseMinor reward { name } } userErrors { code field } } }"""
CREATE_QUEST = """mutation($input: CreateQuestInput!) { createQuest(input: $input) {
  quest { id name visitsRequired funding merchants { name } } userErrors { code field } } }"""
EARN = """mutation($input: EarnPointsInput!) { earnPoints(input: $input) { transaction { id } userErrors { code } } }"""
MEMBER = """{ viewer { ... on MemberViewer { member { balance
  stampCards { stamps completedCards stampCard { name } }
  quests { shopsVisited visitsRequired completedAt quest { name } }
  vouchers(first: 10) { edges { node { code status points reward { name } } } } } } } }"""
REWARDS = """query($m: ID) { rewards(merchantId: $m, first: 10) { edges { node { name pointsCost } } } }"""


async def test_programs_end_to_end(api: Any, admin_key: str, make_merchant: Any, make_member: Any) -> None:
    bakery = await make_merchant("Bakery", 1)
    books = await make_merchant("Books", 1)
    enrolled = await make_member(bakery.merchant.id)
    lid, token = enrolled.member.loyalty_id, enrolled.member_token
    # a reward, refused input first
    bad = await api.call(CREATE_REWARD, {"input": {"name": "Croissant", "pointsCost": 0, "idempotencyKey": "r"}},
                         key=bakery.api_key)
    assert bad["createReward"]["userErrors"][0]["code"] == "INVALID_POINTS"
    made = (await api.call(CREATE_REWARD, {"input": {"name": "Croissant", "pointsCost": 20, "stock": 2,
                                                     "idempotencyKey": "r"}}, key=bakery.api_key))["createReward"]
    reward = made["reward"]
    assert (reward["active"], reward["stockLeft"], reward["merchant"]["name"]) == (True, 2, "Bakery")
    listed = await api.call(REWARDS, {"m": None}, key=token)
    assert [e["node"]["name"] for e in listed["rewards"]["edges"]] == ["Croissant"]
    card = (await api.call(CREATE_CARD, {"input": {"name": "Bread card", "stampsRequired": 2, "minPurchaseMinor": 300,
                                                   "rewardId": reward["id"], "idempotencyKey": "c"}},
                           key=bakery.api_key))["createStampCard"]
    assert card["userErrors"] == [] and card["stampCard"]["reward"]["name"] == "Croissant"
    # another merchant cannot build a card on it
    foreign = await api.call(CREATE_CARD, {"input": {"name": "x", "stampsRequired": 2, "minPurchaseMinor": 0,
                                                     "rewardId": reward["id"], "idempotencyKey": "c"}},
                             key=books.api_key)
    assert foreign["createStampCard"]["userErrors"][0]["code"] == "REWARD_NOT_FOUND"
    shop_ids = [(await api.call("{ viewer { ... on MerchantViewer { merchant { id } } } }", key=k))["viewer"][
        "merchant"]["id"] for k in (bakery.api_key, books.api_key)]
    now = dt.datetime.now(dt.UTC)
    quest = (await api.call(CREATE_QUEST, {"input": {
        "name": "Two shops", "merchantIds": shop_ids, "visitsRequired": 2, "windowDays": 30, "bonusPoints": 7,
        "funding": "NETWORK", "startsAt": (now - dt.timedelta(days=1)).isoformat(),
        "endsAt": (now + dt.timedelta(days=90)).isoformat(),
        "idempotencyKey": "q"}}, key=admin_key))["createQuest"]
    assert quest["userErrors"] == [] and {m["name"] for m in quest["quest"]["merchants"]} == {"Bakery", "Books"}
    # purchases stamp the card and count as visits
    for n, (shop, amount) in enumerate([(bakery, 5_00), (bakery, 5_00), (books, 10_00)]):
        done = await api.call(EARN, {"input": {"loyaltyId": lid, "purchaseAmountMinor": amount,
                                               "idempotencyKey": f"e{n}"}}, key=shop.api_key)
        assert done["earnPoints"]["userErrors"] == []
    me = (await api.call(MEMBER, key=token))["viewer"]["member"]
    assert me["balance"] == 5 + 5 + 10 + 7
    assert me["stampCards"] == [{"stamps": 0, "completedCards": 1, "stampCard": {"name": "Bread card"}}]
    assert me["quests"][0]["shopsVisited"] == 2 and me["quests"][0]["completedAt"] is not None
    assert [e["node"]["points"] for e in me["vouchers"]["edges"]] == [0]
    # the member claims from the wallet; the till uses the voucher
    claimed = (await api.call(CLAIM, {"input": {"loyaltyId": lid, "rewardId": reward["id"],
                                                "idempotencyKey": "w1"}}, key=token))["claimReward"]
    assert claimed["userErrors"] == [] and claimed["member"]["balance"] == 27 - 20
    code = claimed["voucher"]["code"]
    assert len(code) == 11 and code[5] == "-"
    wrong_till = await api.call(USE, {"input": {"code": code, "idempotencyKey": "u"}}, key=books.api_key)
    assert wrong_till["useVoucher"]["userErrors"][0]["code"] == "VOUCHER_NOT_FOUND"
    used = await api.call(USE, {"input": {"code": code, "idempotencyKey": "u"}}, key=bakery.api_key)
    assert used["useVoucher"]["voucher"]["status"] == "USED"
    # the books shop sees none of the bakery's cards or vouchers on the member it knows
    seen = await api.call("""query($l: String!) { member(loyaltyId: $l) { stampCards { stamps }
        vouchers { edges { node { code } } } } }""", {"l": lid}, key=books.api_key)
    assert seen["member"] == {"stampCards": [], "vouchers": {"edges": []}}
