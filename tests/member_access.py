"""The customer's side of an enrollment, for API tests: a claim code in, a member token out."""

from __future__ import annotations

from typing import Any

CLAIM = """mutation($code: String!) { claimMemberAccess(input: {claimCode: $code}) {
  memberToken member { id loyaltyId } userErrors { field code message } } }"""


async def claim_over_api(api: Any, claim_code: str) -> str:
    """Exchange ``claim_code`` (from enrollMember) for the member's token, anonymously, as the customer does."""
    payload = (await api.call(CLAIM, {"code": claim_code}))["claimMemberAccess"]
    assert payload["userErrors"] == [], payload
    return str(payload["memberToken"])
