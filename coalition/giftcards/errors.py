"""Gift card errors. Every one has a code the API returns in ``userErrors``.

DomainError (coalition.errors)
├── InvalidInput
│   ├── INVALID_GIFT_CARD_CODE     mistyped (check character) or malformed code
│   ├── INVALID_AMOUNT             zero, negative, not an integer, or above the per-card maximum
│   ├── INVALID_CURRENCY           not the network's currency
│   └── INVALID_EXPIRY             expiresInSeconds out of range
├── NotFound
│   ├── GIFT_CARD_NOT_FOUND        no card has the code (another network's code, a guess)
│   ├── HOLD_NOT_FOUND             unknown, or another merchant's gift card hold
│   └── TRANSACTION_NOT_FOUND      unknown, or another merchant's spend
├── Conflict
│   ├── IDEMPOTENCY_KEY_CONFLICT
│   ├── HOLD_EXPIRED / HOLD_ALREADY_CLOSED
│   └── ALREADY_REFUNDED
└── Refused
    ├── GIFT_CARD_EXPIRED
    ├── INSUFFICIENT_FUNDS         the card holds less than asked (a spent card holds 0)
    ├── CAPTURE_EXCEEDS_HOLD
    ├── NOT_REFUNDABLE             only a spend (REDEEM, CAPTURE) goes back to the card
    ├── GIFT_CARD_ATTACHED         the card is another member's already
    ├── RATE_LIMITED               too many failed code look-ups from this caller: wait
    └── MERCHANT_SUSPENDED
"""

from __future__ import annotations

from coalition.errors import Conflict, InvalidInput, NotFound, Refused


class InvalidCode(InvalidInput):
    code = "INVALID_GIFT_CARD_CODE"


class GiftCardNotFound(NotFound):
    code = "GIFT_CARD_NOT_FOUND"


class InsufficientFunds(Refused):
    code = "INSUFFICIENT_FUNDS"


class GiftCardExpired(Refused):
    code = "GIFT_CARD_EXPIRED"


class TooManyGuesses(Refused):
    code = "RATE_LIMITED"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many failed gift card look-ups from this caller; wait {int(retry_after_s) + 1} s",
                         field="code")
        self.retry_after_s = retry_after_s


class AlreadyRefunded(Conflict):
    code = "ALREADY_REFUNDED"
