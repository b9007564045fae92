"""One process of the cross-process gift card race in test_giftcards_concurrency.py (not a test module).

Usage: python giftcard_race_worker.py DATABASE_URL MERCHANT_ID CODE COUNT KEY_PREFIX [fast|general]

Connects, prints ``ready``, waits for a line on stdin (so both processes start together), then
runs COUNT concurrent one-minor-unit spends of the card, each with its own key, and prints a
JSON object counting the outcomes: ``{"OK": n, "INSUFFICIENT_FUNDS": m}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import DomainError
from coalition.giftcards.service import GiftCards


async def race(url: str, merchant_id: int, code: str, count: int, prefix: str, path: str) -> Counter[str]:
    settings = load_settings({"COALITION_DATABASE_URL": url,
                              "COALITION_SECRET_KEY": os.environ.get("COALITION_SECRET_KEY", "test-secret-key")})
    db = Database(settings.database_url, pool_size=10)
    gift = GiftCards(db, settings, NetworkKeys.from_settings(settings))
    gift.fast_path = path == "fast" and not db.is_sqlite
    try:
        await asyncio.gather(*(db.ping() for _ in range(10)))
        print("ready", flush=True)
        sys.stdin.readline()

        async def spend(i: int) -> str:
            try:
                await gift.redeem(merchant_id=merchant_id, caller_key=f"MERCHANT:{merchant_id}", code=code,
                                  amount_minor=1, idempotency_key=f"{prefix}-{i}")
            except DomainError as exc:
                return exc.code
            except Exception as exc:  # reported to the test, which fails on it
                return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            return "OK"

        return Counter(await asyncio.gather(*(spend(i) for i in range(count))))
    finally:
        await db.dispose()


def main() -> None:
    url, merchant_id, code, count, prefix = sys.argv[1:6]
    path = sys.argv[6] if len(sys.argv) > 6 else "fast"
    print(json.dumps(dict(asyncio.run(race(url, int(merchant_id), code, int(count), prefix, path)))), flush=True)


if __name__ == "__main__":
    main()
