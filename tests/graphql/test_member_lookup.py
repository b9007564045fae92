"""memberByContact: a merchant finds the one member with exactly this e-mail or phone, rate-limited."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from planted_network import forget_cached_insights

from coalition.config import Settings

LOOKUP = """query($contact: String!) { memberByContact(contact: $contact) { loyaltyId balance email } }"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, lookup_per_min=5)


@pytest.fixture(autouse=True)
async def _fresh_lookup_counters(settings: Settings) -> None:
    await forget_cached_insights(settings.redis_url)  # merchant ids start at 1 again in every test


def codes(body: dict[str, Any]) -> set[str]:
    return {e["extensions"]["code"] for e in body.get("errors", [])}


async def test_a_merchant_finds_a_member_by_exact_email_or_phone(api: Any, make_merchant: Any,
                                                                 make_member: Any) -> None:
    a, b = await make_merchant("A"), await make_merchant("B")
    ann = await make_member(a.merchant.id, email="Ann@Example.com", phone="+44 7700 900123")
    await make_member(a.merchant.id, email="bob@example.com")
    for contact in ("ann@example.com", " ANN@example.com ", "+447700900123", "+44 (7700) 900-123"):
        # B never dealt with Ann: giving her contact at B's till presents her there
        found = (await api.call(LOOKUP, {"contact": contact}, key=b.api_key))["memberByContact"]
        assert found == {"loyaltyId": ann.member.loyalty_id, "balance": 0, "email": None}
    # exact only: a variant another member could own is not a match
    assert (await api.call(LOOKUP, {"contact": "ann+x@example.com"}, key=a.api_key))["memberByContact"] is None


async def test_a_malformed_contact_is_a_coded_error(api: Any, make_merchant: Any) -> None:
    a = await make_merchant("A")
    for contact, code in (("not@an", "INVALID_EMAIL"), ("12", "INVALID_PHONE"), ("\u202e@x.example", "INVALID_EMAIL")):
        body = await api.call(LOOKUP, {"contact": contact}, key=a.api_key, expect_errors=True)
        assert body["data"]["memberByContact"] is None and codes(body) == {code}


async def test_lookups_are_rate_limited_per_merchant(api: Any, make_merchant: Any, make_member: Any) -> None:
    a, b = await make_merchant("A"), await make_merchant("B")
    await make_member(a.merchant.id, email="ann@example.com")
    for n in range(5):
        await api.call(LOOKUP, {"contact": f"guess{n}@example.com"}, key=a.api_key)
    limited = await api.call(LOOKUP, {"contact": "ann@example.com"}, key=a.api_key, expect_errors=True)
    assert limited["data"]["memberByContact"] is None and codes(limited) == {"RATE_LIMITED"}
    # another merchant has its own budget
    assert (await api.call(LOOKUP, {"contact": "ann@example.com"}, key=b.api_key))["memberByContact"] is not None


async def test_only_merchants_may_look_up(api: Any, make_merchant: Any, make_member: Any, admin_key: str) -> None:
    a = await make_merchant("A")
    ann = await make_member(a.merchant.id, email="ann@example.com")
    for key, code in ((admin_key, "FORBIDDEN"), (ann.member_token, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        body = await api.call(LOOKUP, {"contact": "ann@example.com"}, key=key, expect_errors=True)
        assert body["data"]["memberByContact"] is None and codes(body) == {code}
