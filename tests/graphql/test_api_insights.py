"""Insights through the real HTTP API: an admin's network view, each merchant's own view.

The network is built through the real services with planted fraud (tests/planted_network.py),
analysed by the same job `coalition analyze` runs, then read back over /graphql.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from planted_network import Planted, build_planted, forget_cached_insights
from sqlalchemy import select

from coalition.db import utcnow
from coalition.ledger.models import Entry
from coalition.members.credentials import add_token
from coalition.network.jobs import run_analysis

ADMIN_VIEW = """{ insights {
  scope computedAt ageSeconds members networkMapUrl
  topReferrers(first: 5) { member { loyaltyId } influence referrals reach }
  partnerRecommendations(first: 50) { merchant { name } forMerchant { name } score sharedMembers lift }
  fraudAlerts { kind score explanation members { loyaltyId } merchants { name } }
  segments { segment members rule suggestedAction }
  communities { id merchants { name } }
  winBack { member { loyaltyId } } } }"""
MERCHANT_VIEW = """query($lid: String!) { insights {
  scope members merchant { name } computedAt ageSeconds networkMapUrl
  topReferrers { member { loyaltyId } influence referrals }
  partnerRecommendations { merchant { name } score sharedMembers }
  segments { segment members rule suggestedAction }
  communities { merchants { name } }
  winBack(first: 100) { member { loyaltyId } segment daysSinceLastPurchase spentMinor }
  memberRfm(loyaltyId: $lid) { member { loyaltyId } recencyScore frequencyScore monetaryScore purchases segment }
} }"""
FRAUD = "{ insights { segments { segment } fraudAlerts { kind } } }"
OTHER = """query($id: ID!) { insights(merchantId: $id) { scope members } }"""


@pytest.fixture(autouse=True)
async def _no_cached_insights(settings: Any) -> None:
    await forget_cached_insights(settings.redis_url)


@pytest.fixture
async def planted(db: Any, keys: Any, ledger: Any, clock: Any, settings: Any) -> Planted:
    net = await build_planted(db, keys, ledger, clock)
    await run_analysis(db, settings, now=clock.now)
    return net


async def _own_members(db: Any, net: Planted, shop: str) -> set[str]:
    async with db.read() as conn:
        buyers = set((await conn.execute(
            select(Entry.member_id).where(Entry.merchant_id == net.shops[shop].id))).scalars())
    return {net.loyalty[m] for m in buyers | {m for m, home in net.members.items() if home == shop}}


async def test_before_any_run_insights_are_null(api: Any, admin_key: str) -> None:
    assert (await api.call(ADMIN_VIEW, key=admin_key))["insights"] is None


async def test_an_admin_sees_the_planted_fraud_and_the_map(api: Any, admin_key: str, planted: Planted) -> None:
    view = (await api.call(ADMIN_VIEW, key=admin_key))["insights"]

    assert view["scope"] == "NETWORK" and view["members"] == len(planted.members)
    assert view["ageSeconds"] >= 0 and view["computedAt"]
    alerts = {a["kind"]: a for a in view["fraudAlerts"]}
    sybil = alerts["SYBIL_FARM"]
    assert {m["loyaltyId"] for m in sybil["members"]} == {planted.loyalty[m] for m in
                                                          [planted.sybil_referrer, *planted.sybils]}
    assert sybil["explanation"]
    collusion = alerts["MERCHANT_COLLUSION"]
    assert [m["name"] for m in collusion["merchants"]] == ["Shop X", "Shop Y"]
    assert {m["loyaltyId"] for m in collusion["members"]} == {planted.loyalty[m] for m in planted.colluders}
    assert {s["segment"] for s in view["segments"]} == {"TRULY_LOYAL", "ACCESSIBLE", "TRAPPED", "HIGH_RISK"}
    assert all(s["rule"] and s["suggestedAction"] for s in view["segments"])
    assert view["communities"] and view["winBack"] == []
    assert view["networkMapUrl"] == "/admin/network-map.svg"

    for fmt, media in (("svg", "image/svg+xml"), ("png", "image/png")):
        response = await api.client.get(f"/admin/network-map.{fmt}", headers={"Authorization": f"Bearer {admin_key}"})
        assert response.status_code == 200 and response.headers["content-type"] == media
        assert response.headers["x-computed-at"]
    merchant = await api.client.get("/admin/network-map.svg", headers={"Authorization": f"Bearer {planted.keys['A']}"})
    assert merchant.status_code == 403
    assert (await api.client.get("/admin/network-map.svg")).status_code == 401
    # A browser sends the key as the Basic password (the admin console links to the map).
    browser = await api.client.get("/admin/network-map.svg", auth=("", admin_key))
    assert browser.status_code == 200 and browser.headers["content-type"] == "image/svg+xml"


async def test_the_static_map_speaks_the_readers_language(api: Any, admin_key: str, planted: Planted) -> None:
    bearer = {"Authorization": f"Bearer {admin_key}"}
    english = await api.client.get("/admin/network-map.svg", headers=bearer)
    hebrew = await api.client.get("/admin/network-map.svg", headers={**bearer, "Accept-Language": "he-IL,he;q=0.9"})
    danish = await api.client.get("/admin/network-map.png", headers={**bearer, "Cookie": "lang=da"})

    words = {name: set(re.findall(r"<!-- (.*?) -->", r.text)) for name, r in (("en", english), ("he", hebrew))}
    assert {"Network map", "Size: customers; lines: shared customers"} <= words["en"]
    assert {"מפת הרשת", "גודל: לקוחות; קווים: לקוחות משותפים"} <= words["he"]
    assert "Network map" not in words["he"] and "Shop X" in words["he"]  # names are data: as they are
    assert hebrew.headers["content-language"] == "he" and "Accept-Language" in hebrew.headers["vary"]
    assert danish.status_code == 200 and danish.headers["content-type"] == "image/png"
    assert danish.headers["content-language"] == "da" and danish.content != english.content
    assert hebrew.headers["x-computed-at"] == english.headers["x-computed-at"]  # the same run, drawn again


async def test_each_merchant_sees_only_its_own_members(api: Any, db: Any, planted: Planted) -> None:
    for shop, key in planted.keys.items():
        own = await _own_members(db, planted, shop)
        some_member = sorted(own)[0]
        view = (await api.call(MERCHANT_VIEW, {"lid": some_member}, key=key))["insights"]

        assert view["scope"] == "MERCHANT" and view["merchant"]["name"] == f"Shop {shop}"
        assert view["members"] == len(own)
        assert view["networkMapUrl"] is None
        listed = {r["member"]["loyaltyId"] for r in view["topReferrers"]}
        listed |= {w["member"]["loyaltyId"] for w in view["winBack"]}
        assert listed <= own, shop
        assert {s["segment"] for s in view["segments"]} == {"TRULY_LOYAL", "ACCESSIBLE", "TRAPPED", "HIGH_RISK"}
        if view["memberRfm"] is not None:
            assert view["memberRfm"]["member"]["loyaltyId"] == some_member

    helper = planted.loyalty[planted.honest_referrer]
    b = (await api.call(MERCHANT_VIEW, {"lid": helper}, key=planted.keys["B"]))
    assert [r["member"]["loyaltyId"] for r in b["insights"]["topReferrers"]] == [helper]
    # The sybil referrer was enrolled at A: B never sees it among its referrers.
    a = (await api.call(MERCHANT_VIEW, {"lid": planted.loyalty[planted.colluders[0]]}, key=planted.keys["A"]))
    assert a["insights"]["memberRfm"] is None  # a colluder never bought at A
    x = (await api.call(MERCHANT_VIEW, {"lid": planted.loyalty[planted.colluders[0]]}, key=planted.keys["X"]))
    rfm = x["insights"]["memberRfm"]
    assert rfm["purchases"] == 1 and 1 <= rfm["recencyScore"] <= 5


async def test_fraud_alerts_and_other_merchants_are_forbidden_to_a_merchant(api: Any, admin_key: str, keys: Any,
                                                                            planted: Planted) -> None:
    body = await api.call(FRAUD, key=planted.keys["A"], expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["data"]["insights"] is None

    other = keys.global_ids.encode("Merchant", planted.shops["B"].id)
    body = await api.call(OTHER, {"id": other}, key=planted.keys["A"], expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    own = keys.global_ids.encode("Merchant", planted.shops["A"].id)
    assert (await api.call(OTHER, {"id": own}, key=planted.keys["A"]))["insights"]["scope"] == "MERCHANT"
    # An admin may look at any merchant's view.
    assert (await api.call(OTHER, {"id": other}, key=admin_key))["insights"]["scope"] == "MERCHANT"


async def test_members_and_anonymous_callers_get_no_insights(api: Any, db: Any, planted: Planted) -> None:
    async with db.sessions.begin() as session:
        token = await add_token(session, planted.sybil_referrer, now=utcnow())
    body = await api.call(FRAUD, key=token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await api.call(FRAUD, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
