"""Checks of ledger input that need no database."""

from __future__ import annotations

from coalition.errors import InvalidInput
from coalition.ledger.core import MAX_POINTS
from coalition.loyalty_id import LoyaltyIdError, normalize_loyalty_id


def parse_loyalty_id(raw: str, field: str = "loyaltyId") -> str:
    try:
        return normalize_loyalty_id(raw)
    except LoyaltyIdError as exc:
        raise InvalidInput(f"loyalty ID {raw[:32]!r}: {exc}", code="INVALID_LOYALTY_ID", field=field) from None


def check_points(value: object, field: str = "points", code: str = "INVALID_POINTS") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer", code=code, field=field)
    if value <= 0:
        raise InvalidInput(f"{field} must be greater than 0, got {value}", code=code, field=field)
    if value > MAX_POINTS:
        raise InvalidInput(f"{field} must be at most {MAX_POINTS}, got {value}", code=code, field=field)
    return value
