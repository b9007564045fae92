"""Guessing gift card codes is throttled and noticed.

Every look-up that names a code no card has (a mistyped code, another network's, a
guess) costs the caller one failure from a budget of ``COALITION_GIFT_CARD_LOOKUP_FAILURES``
per ``COALITION_GIFT_CARD_LOOKUP_WINDOW_S`` (counted per API key or member token, in Redis
when the app has it). A caller over budget is refused before any code is read, with
RATE_LIMITED, until the window turns over. Each failure counts toward the metric
``coalition_gift_card_lookup_failures_total``; the failure that spends the budget logs one
WARNING line naming the caller (never the code).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from coalition.giftcards.errors import TooManyGuesses
from coalition.ratelimit import InProcessRateLimiter, RateLimiter

logger = logging.getLogger("coalition.giftcards")

# Not in any registry until the app adds it to its own (coalition/app.py): tests build many apps.
LOOKUP_FAILURES = Counter("coalition_gift_card_lookup_failures", "Gift card look-ups that named no card.",
                          ["outcome"], registry=None)


class GuessGuard:
    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.throttled = 0  # callers refused since start (tests read it)

    @classmethod
    def in_process(cls, failures: int, window_s: int) -> GuessGuard:
        return cls(InProcessRateLimiter(failures, window_s=window_s))

    async def check(self, caller_key: str) -> None:
        """Raise RATE_LIMITED if the caller has no failures left in this window."""
        blocked = await self.limiter.retry_after(caller_key)
        if blocked is not None:
            self.throttled += 1
            LOOKUP_FAILURES.labels("throttled").inc()
            raise TooManyGuesses(blocked)

    async def failed(self, caller_key: str) -> None:
        """Count a failed look-up; the one that spends the budget alerts."""
        LOOKUP_FAILURES.labels("no_card").inc()
        over = await self.limiter.hit(caller_key)
        if over is None and await self.limiter.retry_after(caller_key) is None:
            return
        # This failure spent the budget (or raced past it): say so once, naming the caller only.
        logger.warning("gift card look-ups throttled for %s: too many codes that match no card", caller_key)
        if over is not None:
            self.throttled += 1
            raise TooManyGuesses(over)
