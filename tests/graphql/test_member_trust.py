"""Issue 13, items 3 and 5, as a rogue merchant would try them, through the contract's operations only.

Both tests fail on the code before the fix: a replayed ``enrollMember`` handed the merchant a
working member token, and ``SELF_REFERRAL`` told it whether an e-mail was a code owner's.
"""

from __future__ import annotations

from typing import Any

ONBOARD = """mutation($name: String!) { onboardMerchant(input: {name: $name, earnRatePointsPerUnit: 1}) {
  apiKey userErrors { code } } }"""
ENROLL = """mutation($key: String!, $email: String, $ref: String) {
  enrollMember(input: {idempotencyKey: $key, email: $email, referralCode: $ref}) {
    member { loyaltyId referralCode } memberToken userErrors { field code message } } }"""
CONTACT = """{ viewer { __typename ... on MemberViewer { member { loyaltyId email } } } }"""


async def _shop(api: Any, admin_key: str, name: str) -> str:
    return str((await api.call(ONBOARD, {"name": name}, key=admin_key))["onboardMerchant"]["apiKey"])


async def test_a_merchant_never_gets_a_token_that_opens_the_members_account(api: Any, admin_key: str) -> None:
    shop = await _shop(api, admin_key, "Bakery")
    first = (await api.call(ENROLL, {"key": "e-1", "email": "ana@example.com"}, key=shop))["enrollMember"]
    replay = (await api.call(ENROLL, {"key": "e-1", "email": "ana@example.com"}, key=shop))["enrollMember"]
    assert first["userErrors"] == replay["userErrors"] == []
    assert replay["member"]["loyaltyId"] == first["member"]["loyaltyId"]
    for token in (first["memberToken"], replay["memberToken"]):
        if token is not None:  # the old code: a token, and the same one again on a replay
            body = await api.call(CONTACT, key=token, expect_errors=True)
            viewer = (body.get("data") or {}).get("viewer")
            assert viewer is None, f"the merchant read the member's contact data: {viewer}"


async def test_referral_codes_do_not_tell_whose_contact_it_is(api: Any, admin_key: str) -> None:
    """With someone's referral code, enrolling their e-mail must answer as with any other code."""
    shop = await _shop(api, admin_key, "Bakery")
    rogue = await _shop(api, admin_key, "Rogue")
    ana = (await api.call(ENROLL, {"key": "a", "email": "ana@example.com"}, key=shop))["enrollMember"]
    bo = (await api.call(ENROLL, {"key": "b", "email": "bo@example.com"}, key=shop))["enrollMember"]

    def answer(payload: dict[str, Any]) -> tuple[Any, ...]:
        return tuple((e["code"], tuple(e["field"] or ()), e["message"]) for e in payload["userErrors"])

    answers = {}
    for i, (email, code) in enumerate([("ana@example.com", ana["member"]["referralCode"]),
                                       ("ana@example.com", bo["member"]["referralCode"]),
                                       ("bo@example.com", ana["member"]["referralCode"]),
                                       ("bo@example.com", bo["member"]["referralCode"])]):
        payload = (await api.call(ENROLL, {"key": f"probe-{i}", "email": email, "ref": code}, key=rogue))
        answers[(email, code)] = answer(payload["enrollMember"])
    assert len(set(answers.values())) == 1, answers
    [(code, _field, message)] = next(iter(answers.values()))
    assert code == "CONTACT_ALREADY_ENROLLED"
    assert ana["member"]["loyaltyId"] not in message and bo["member"]["loyaltyId"] not in message


async def test_a_variant_of_a_contact_is_no_oracle_either(api: Any, admin_key: str) -> None:
    """``ana+x@`` shares ``ana@``'s fingerprint: the answer must not depend on the code's owner."""
    shop = await _shop(api, admin_key, "Bakery")
    ana = (await api.call(ENROLL, {"key": "a", "email": "ana@example.com"}, key=shop))["enrollMember"]
    bo = (await api.call(ENROLL, {"key": "b", "email": "bo@example.com"}, key=shop))["enrollMember"]
    with_owners_code = (await api.call(ENROLL, {"key": "p1", "email": "ana+1@example.com",
                                                "ref": ana["member"]["referralCode"]}, key=shop))["enrollMember"]
    with_other_code = (await api.call(ENROLL, {"key": "p2", "email": "ana+2@example.com",
                                               "ref": bo["member"]["referralCode"]}, key=shop))["enrollMember"]
    assert with_owners_code["userErrors"] == with_other_code["userErrors"] == []
