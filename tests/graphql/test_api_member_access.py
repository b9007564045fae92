"""Member access over the API: claim codes, rotation, revocation, who may call what."""

from __future__ import annotations

from typing import Any

import pytest
from member_access import claim_over_api

ONBOARD = """mutation($name: String!) { onboardMerchant(input: {name: $name, earnRatePointsPerUnit: 1}) {
  apiKey userErrors { code } } }"""
ENROLL = """mutation($key: String!, $email: String) {
  enrollMember(input: {idempotencyKey: $key, email: $email}) {
    member { loyaltyId } memberToken claimCode claimUrl claimExpiresAt userErrors { field code message } } }"""
CLAIM = """mutation($code: String!) { claimMemberAccess(input: {claimCode: $code}) {
  memberToken member { loyaltyId } userErrors { field code message } } }"""
ROTATE = """mutation { rotateMemberToken(input: {label: "phone"}) { memberToken member { loyaltyId }
  userErrors { field code message } } }"""
REVOKE = """mutation($lid: String) { revokeMemberTokens(input: {loyaltyId: $lid}) { revokedCount
  userErrors { field code message } } }"""
REISSUE = """mutation($lid: String!) { issueMemberClaimCode(input: {loyaltyId: $lid}) {
  member { loyaltyId } claimCode claimUrl claimExpiresAt userErrors { field code message } } }"""
CONTACT = """{ viewer { ... on MemberViewer { member { loyaltyId email } } } }"""
MEMBER_BY_LID = """query($lid: String!) { member(loyaltyId: $lid) { loyaltyId email } }"""


@pytest.fixture
async def net(api: Any, admin_key: str) -> dict[str, Any]:
    shop = (await api.call(ONBOARD, {"name": "Bakery"}, key=admin_key))["onboardMerchant"]["apiKey"]
    enrolled = (await api.call(ENROLL, {"key": "e-1", "email": "ana@example.com"}, key=shop))["enrollMember"]
    return {"shop": shop, "admin": admin_key, "enrolled": enrolled, "lid": enrolled["member"]["loyaltyId"]}


async def error_code(api: Any, query: str, variables: dict[str, Any] | None = None, key: str | None = None) -> str:
    body = await api.call(query, variables, key=key, expect_errors=True)
    return str(body["errors"][0]["extensions"]["code"])


async def test_enrollment_hands_out_a_claim_code_and_the_customer_claims_a_token(api: Any, net: dict[str, Any],
                                                                                settings: Any) -> None:
    enrolled = net["enrolled"]
    assert enrolled["memberToken"] is None
    code = enrolled["claimCode"]
    assert enrolled["claimUrl"] == f"{settings.public_url}/claim#code={code}"
    assert enrolled["claimExpiresAt"]
    claimed = (await api.call(CLAIM, {"code": code}))["claimMemberAccess"]  # anonymous: the customer
    assert claimed["userErrors"] == [] and claimed["member"] == {"loyaltyId": net["lid"]}
    token = claimed["memberToken"]
    # With its own token the member reads its contact data; the merchant never can.
    assert (await api.call(CONTACT, key=token))["viewer"]["member"] == {"loyaltyId": net["lid"],
                                                                       "email": "ana@example.com"}
    assert (await api.call(MEMBER_BY_LID, {"lid": net["lid"]}, key=net["shop"]))["member"]["email"] is None
    # The code worked once.
    again = (await api.call(CLAIM, {"code": code}))["claimMemberAccess"]
    assert again["memberToken"] is None
    assert again["userErrors"] == [{"field": ["input", "claimCode"], "code": "CLAIM_CODE_INVALID",
                                    "message": again["userErrors"][0]["message"]}]


async def test_a_replay_never_returns_a_token_nor_a_second_live_code(api: Any, net: dict[str, Any]) -> None:
    replay = (await api.call(ENROLL, {"key": "e-1", "email": "ana@example.com"}, key=net["shop"]))["enrollMember"]
    assert replay["memberToken"] is None and replay["claimCode"] not in (None, net["enrolled"]["claimCode"])
    stale = (await api.call(CLAIM, {"code": net["enrolled"]["claimCode"]}))["claimMemberAccess"]
    assert stale["userErrors"][0]["code"] == "CLAIM_CODE_INVALID"
    await claim_over_api(api, replay["claimCode"])
    after = (await api.call(ENROLL, {"key": "e-1", "email": "ana@example.com"}, key=net["shop"]))["enrollMember"]
    assert after["userErrors"] == [] and after["member"]["loyaltyId"] == net["lid"]
    assert (after["memberToken"], after["claimCode"], after["claimUrl"]) == (None, None, None)


async def test_failed_claims_all_look_alike(api: Any, net: dict[str, Any]) -> None:
    answers = set()
    real = net["enrolled"]["claimCode"]
    one_off = real[:-1] + ("1" if real[-1] == "0" else "0")  # the real code with its last character changed
    for code in ("", "garbage", "0000-0000", "00000-00000-00000-00000", one_off, "x" * 10_000):
        payload = (await api.call(CLAIM, {"code": code}))["claimMemberAccess"]
        assert payload["memberToken"] is None
        answers.add(tuple((e["code"], e["message"]) for e in payload["userErrors"]))
    assert len(answers) == 1 and next(iter(answers))[0][0] == "CLAIM_CODE_INVALID"


async def test_rotate_and_revoke_through_the_api(api: Any, net: dict[str, Any]) -> None:
    token = await claim_over_api(api, net["enrolled"]["claimCode"])
    rotated = (await api.call(ROTATE, key=token))["rotateMemberToken"]
    assert rotated["userErrors"] == [] and rotated["member"] == {"loyaltyId": net["lid"]}
    new = rotated["memberToken"]
    assert await error_code(api, CONTACT, key=token) == "UNAUTHENTICATED"
    assert (await api.call(CONTACT, key=new))["viewer"]["member"]["loyaltyId"] == net["lid"]

    # A member cannot name another member; it signs itself out.
    assert await error_code(api, REVOKE, {"lid": "0000-0000-0000"}, key=new) == "FORBIDDEN"
    revoked = (await api.call(REVOKE, {"lid": None}, key=new))["revokeMemberTokens"]
    assert revoked == {"revokedCount": 1, "userErrors": []}
    assert await error_code(api, CONTACT, key=new) == "UNAUTHENTICATED"


async def test_a_member_names_itself_as_a_person_types_its_loyalty_id(api: Any, net: dict[str, Any]) -> None:
    token = await claim_over_api(api, net["enrolled"]["claimCode"])
    typed = net["lid"].replace("-", " ").lower()  # spaces for dashes, lower case: still its own
    revoked = (await api.call(REVOKE, {"lid": typed}, key=token))["revokeMemberTokens"]
    assert revoked == {"revokedCount": 1, "userErrors": []}
    assert await error_code(api, CONTACT, key=token) == "UNAUTHENTICATED"


async def test_an_admin_gets_a_member_back_in(api: Any, net: dict[str, Any]) -> None:
    token = await claim_over_api(api, net["enrolled"]["claimCode"])
    reissued = (await api.call(REISSUE, {"lid": net["lid"]}, key=net["admin"]))["issueMemberClaimCode"]
    assert reissued["userErrors"] == [] and reissued["member"] == {"loyaltyId": net["lid"]}
    assert await error_code(api, CONTACT, key=token) == "UNAUTHENTICATED"
    fresh = await claim_over_api(api, reissued["claimCode"])
    assert (await api.call(CONTACT, key=fresh))["viewer"]["member"]["loyaltyId"] == net["lid"]
    # An admin revokes by loyalty ID, and must give one.
    assert (await api.call(REVOKE, {"lid": net["lid"]}, key=net["admin"]))["revokeMemberTokens"]["revokedCount"] == 1
    missing = (await api.call(REVOKE, {"lid": None}, key=net["admin"]))["revokeMemberTokens"]
    assert missing["userErrors"][0]["code"] == "INVALID_LOYALTY_ID"
    unknown = (await api.call(REISSUE, {"lid": "0000-0000-0000"}, key=net["admin"]))["issueMemberClaimCode"]
    assert unknown["userErrors"][0]["code"] in {"MEMBER_NOT_FOUND", "INVALID_LOYALTY_ID"}


async def test_each_credential_calls_only_its_own_mutations(api: Any, net: dict[str, Any]) -> None:
    token = await claim_over_api(api, net["enrolled"]["claimCode"])
    shop, admin = net["shop"], net["admin"]
    # A merchant key cannot act as the member, claim a customer's code, or re-issue codes.
    assert await error_code(api, ROTATE, key=shop) == "FORBIDDEN"
    assert await error_code(api, REVOKE, {"lid": net["lid"]}, key=shop) == "FORBIDDEN"
    assert await error_code(api, REISSUE, {"lid": net["lid"]}, key=shop) == "FORBIDDEN"
    assert await error_code(api, CLAIM, {"code": "00000-00000-00000-00000"}, key=shop) == "FORBIDDEN"
    assert await error_code(api, CLAIM, {"code": "00000-00000-00000-00000"}, key=admin) == "FORBIDDEN"
    # A member token cannot enroll, re-issue codes, or rotate without being a member.
    assert await error_code(api, ENROLL, {"key": "m-1", "email": "x@example.com"}, key=token) == "FORBIDDEN"
    assert await error_code(api, REISSUE, {"lid": net["lid"]}, key=token) == "FORBIDDEN"
    assert await error_code(api, ROTATE, key=admin) == "FORBIDDEN"
    # Without credentials only the claim answers.
    assert await error_code(api, ROTATE) == "UNAUTHENTICATED"
    assert await error_code(api, REVOKE, {"lid": net["lid"]}) == "UNAUTHENTICATED"
    assert await error_code(api, REISSUE, {"lid": net["lid"]}) == "UNAUTHENTICATED"
