"""Reviewers' decisions end to end: an admin dismisses or confirms a flagged member over the API,
the next analysis run remembers it; bad input is refused with a code and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from planted_network import forget_cached_insights
from sqlalchemy import func, select

from coalition.network.jobs import run_analysis
from coalition.network.models import FraudReview
from coalition.network.reviews import load_reviews

ENROLL = """mutation($key: String!, $email: String, $phone: String) {
  enrollMember(input: {idempotencyKey: $key, email: $email, phone: $phone}) {
    member { id loyaltyId } userErrors { code } } }"""
REVIEW = """mutation($input: ReviewFraudAlertInput!) { reviewFraudAlert(input: $input) {
  review { subjectKind subjectId decision reviewer reason decidedAt } userErrors { field code } } }"""
ALERTS = "{ insights { fraudAlerts { kind members { loyaltyId } explanation } } }"
ALIASES = ["ann.smith+1@gmail.com", "AnnSmith@googlemail.com", "a.n.n.smith@gmail.com", "annsmith+x@gmail.com"]


@pytest.fixture(autouse=True)
async def _no_cached_insights(settings: Any) -> None:
    await forget_cached_insights(settings.redis_url)


async def _flagged(api: Any, admin_key: str) -> set[str]:
    view = (await api.call(ALERTS, key=admin_key))["insights"]
    return {m["loyaltyId"] for a in view["fraudAlerts"] if a["kind"] == "SHARED_CONTACT" for m in a["members"]}


async def test_a_dismissed_member_leaves_the_next_runs_alerts(api: Any, admin_key: str, make_merchant: Any, db: Any,
                                                             settings: Any, clock: Any, keys: Any) -> None:
    shop = (await make_merchant("Bakery")).api_key
    enrolled = [(await api.call(ENROLL, {"key": f"e-{n}", "email": email}, key=shop))["enrollMember"]["member"]
                for n, email in enumerate(ALIASES)]
    await run_analysis(db, settings, now=clock.now, draw_map=False)
    assert await _flagged(api, admin_key) == {m["loyaltyId"] for m in enrolled}

    answer = (await api.call(REVIEW, {"input": {"subjectId": enrolled[0]["id"], "decision": "DISMISSED",
                                                "reason": "the owner's own second card"}}, key=admin_key))
    review = answer["reviewFraudAlert"]
    assert review["userErrors"] == []
    assert review["review"]["decision"] == "DISMISSED" and review["review"]["subjectKind"] == "MEMBER"
    assert review["review"]["reviewer"].startswith("admin-key:")
    await forget_cached_insights(settings.redis_url)
    await run_analysis(db, settings, now=clock.now, draw_map=False)

    assert await _flagged(api, admin_key) == {m["loyaltyId"] for m in enrolled[1:]}
    assert (await load_reviews(db)).dismissed_members == {keys.global_ids.decode(enrolled[0]["id"], "Member")}

    # A change of mind is a new row; the newest counts.
    await api.call(REVIEW, {"input": {"subjectId": enrolled[0]["id"], "decision": "CONFIRMED"}}, key=admin_key)
    reviews = await load_reviews(db)
    assert reviews.dismissed_members == set() and len(reviews.confirmed_members) == 1


async def test_bad_reviews_are_refused_with_a_code_and_nothing_is_stored(api: Any, admin_key: str, db: Any,
                                                                         make_merchant: Any, keys: Any) -> None:
    shop = await make_merchant("Bakery")
    cases = [
        ({"subjectId": "not-an-id", "decision": "CONFIRMED"}, "INVALID_ID"),
        ({"subjectId": keys.global_ids.encode("Member", 10**9), "decision": "CONFIRMED"}, "MEMBER_NOT_FOUND"),
        ({"subjectId": keys.global_ids.encode("Merchant", 10**9), "decision": "DISMISSED"}, "MERCHANT_NOT_FOUND"),
        *(({"subjectId": keys.global_ids.encode("Merchant", shop.merchant.id), "decision": "DISMISSED",
            "reason": reason}, "INVALID_INPUT") for reason in ("x" * 501, "a\x00b", "a\u202eb")),
    ]
    for sample, code in cases:
        payload = (await api.call(REVIEW, {"input": sample}, key=admin_key))["reviewFraudAlert"]
        assert [e["code"] for e in payload["userErrors"]] == [code], sample
        assert payload["review"] is None
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(FraudReview))).scalar_one() == 0
