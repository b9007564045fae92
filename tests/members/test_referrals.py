"""Referral rules at enrollment: self-referral, the daily limit per referrer, codes."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from member_access import claim_over_api

from coalition.errors import DomainError
from coalition.members.service import enroll_member


@pytest.fixture
async def shop(make_merchant: Any) -> Any:
    return (await make_merchant("Bakery")).merchant


async def _enroll(db: Any, keys: Any, shop: Any, key: str, **fields: Any) -> Any:
    return await enroll_member(db, keys, merchant_id=shop.id, idempotency_key=key, **fields)


async def test_a_referral_records_who_referred_whom(db: Any, keys: Any, shop: Any) -> None:
    referrer = (await _enroll(db, keys, shop, "a", email="ana@example.com")).member
    referee = (await _enroll(db, keys, shop, "b", email="bo@example.com", referral_code=referrer.referral_code)).member
    assert referee.referred_by_id == referrer.id


async def test_the_referrers_own_contact_answers_as_without_the_code(db: Any, keys: Any, shop: Any) -> None:
    """Issue 13, item 5: SELF_REFERRAL answered exactly when the contact was the code owner's (an oracle).

    Now an enrolled contact is CONTACT_ALREADY_ENROLLED whatever code comes with it: the
    owner's code, another member's code, or none; the answer names nobody. Fails on the old code.
    """
    referrer = (await _enroll(db, keys, shop, "a", email="ana@example.com", phone="+44 7700 900001")).member
    other = (await _enroll(db, keys, shop, "b", email="bo@example.com")).member

    for contact in ({"email": "ANA@example.com"}, {"phone": "+447700900001", "email": "new@example.com"}):
        answers = []
        for code in (referrer.referral_code, other.referral_code, None):
            with pytest.raises(DomainError) as info:
                await _enroll(db, keys, shop, f"self-{contact}-{code}", referral_code=code, **contact)
            answers.append((info.value.code, info.value.field, info.value.message))
        assert answers[0] == answers[1] == answers[2], answers
        assert answers[0][0] == "CONTACT_ALREADY_ENROLLED"
        assert "ana" not in answers[0][2].lower() and referrer.loyalty_id not in answers[0][2]


async def test_a_variant_of_ones_own_contact_enrolls_without_the_referral(db: Any, keys: Any, shop: Any) -> None:
    """A variant (same fingerprint) is not refused, which would tell whose contact it is; the referral
    simply does not count, so the self-referral earns no bonus."""
    referrer = (await _enroll(db, keys, shop, "a", email="ann.smith@gmail.com", phone="+44 7700 900001")).member

    for contact in ({"email": "annsmith+2@googlemail.com"}, {"phone": "07700 900001", "email": "x@example.com"}):
        variant = await _enroll(db, keys, shop, f"variant-{contact}", referral_code=referrer.referral_code, **contact)
        assert variant.member.referred_by_id is None
        assert variant.claim is not None
    # A different person is welcome.
    friend = await _enroll(db, keys, shop, "b", email="bo@gmail.com", referral_code=referrer.referral_code)
    assert friend.member.referred_by_id == referrer.id


async def test_duplicate_contact_and_unknown_code_are_refused(db: Any, keys: Any, shop: Any) -> None:
    referrer = (await _enroll(db, keys, shop, "a", email="ana@example.com")).member
    await _enroll(db, keys, shop, "b", email="bo@example.com")

    with pytest.raises(DomainError) as info:
        await _enroll(db, keys, shop, "c", email="bo@example.com", referral_code=referrer.referral_code)
    assert info.value.code == "CONTACT_ALREADY_ENROLLED"
    with pytest.raises(DomainError) as info:
        await _enroll(db, keys, shop, "d", email="cy@example.com", referral_code="NOSUCHCODE")
    assert info.value.code == "REFERRAL_CODE_NOT_FOUND"


async def test_a_referrer_is_limited_per_day(db: Any, keys: Any, shop: Any) -> None:
    referrer = (await _enroll(db, keys, shop, "a")).member
    day = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    for i in range(3):
        await _enroll(db, keys, shop, f"r{i}", referral_code=referrer.referral_code, referral_daily_limit=3,
                      now=day + dt.timedelta(hours=i))

    with pytest.raises(DomainError) as info:
        await _enroll(db, keys, shop, "r3", referral_code=referrer.referral_code, referral_daily_limit=3,
                      now=day + dt.timedelta(hours=5))
    assert info.value.code == "REFERRAL_LIMIT_REACHED"
    # A day after the first, there is room again.
    later = await _enroll(db, keys, shop, "r4", referral_code=referrer.referral_code, referral_daily_limit=3,
                          now=day + dt.timedelta(hours=24, minutes=1))
    assert later.member.referred_by_id == referrer.id


async def test_the_daily_limit_holds_under_concurrency(db: Any, keys: Any, shop: Any) -> None:
    referrer = (await _enroll(db, keys, shop, "a")).member

    async def attempt(i: int) -> str:
        try:
            await _enroll(db, keys, shop, f"c{i}", referral_code=referrer.referral_code, referral_daily_limit=2)
        except DomainError as error:
            return error.code
        return "OK"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(6)))
    assert sorted(outcomes) == ["OK", "OK"] + ["REFERRAL_LIMIT_REACHED"] * 4


ONBOARD = """mutation($name: String!) { onboardMerchant(input: {name: $name, earnRatePointsPerUnit: 1}) {
  apiKey userErrors { code } } }"""
ENROLL = """mutation($key: String!, $email: String, $ref: String) {
  enrollMember(input: {idempotencyKey: $key, email: $email, referralCode: $ref}) {
    member { loyaltyId referralCode } memberToken claimCode userErrors { field code message } } }"""
EARN = """mutation($lid: String!, $amount: Int!, $key: String!) {
  earnPoints(input: {loyaltyId: $lid, purchaseAmountMinor: $amount, idempotencyKey: $key}) {
    member { balance } userErrors { code } } }"""
MINE = """{ viewer { ... on MemberViewer { member { balance
  transactions { edges { node { kind points merchant { name } reference } } } } } } }"""


async def test_referral_through_the_api(api: Any, admin_key: str, settings: Any) -> None:
    shop = (await api.call(ONBOARD, {"name": "Bakery"}, key=admin_key))["onboardMerchant"]["apiKey"]
    ana = (await api.call(ENROLL, {"key": "1", "email": "ana@example.com"}, key=shop))["enrollMember"]
    code = ana["member"]["referralCode"]

    selfish = (await api.call(ENROLL, {"key": "2", "email": "ana@example.com", "ref": code}, key=shop))["enrollMember"]
    assert selfish["userErrors"][0]["code"] == "CONTACT_ALREADY_ENROLLED" and selfish["userErrors"][0]["field"] == [
        "input", "email"]
    bo = (await api.call(ENROLL, {"key": "3", "email": "bo@example.com", "ref": code}, key=shop))["enrollMember"]
    assert bo["userErrors"] == []
    bo["memberToken"] = await claim_over_api(api, bo["claimCode"])
    ana["memberToken"] = await claim_over_api(api, ana["claimCode"])

    earned = (await api.call(EARN, {"lid": bo["member"]["loyaltyId"], "amount": 2500, "key": "s1"}, key=shop))
    assert earned["earnPoints"]["member"]["balance"] == 25 + settings.referral_welcome_points

    mine = (await api.call(MINE, key=bo["memberToken"]))["viewer"]["member"]
    kinds = {(e["node"]["kind"], e["node"]["merchant"] and e["node"]["merchant"]["name"])
             for e in mine["transactions"]["edges"]}
    assert kinds == {("EARN", "Bakery"), ("BONUS", None)}
    ana_now = (await api.call(MINE, key=ana["memberToken"]))["viewer"]["member"]
    assert ana_now["balance"] == settings.referral_bonus_points
