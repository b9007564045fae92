"""One process of the cross-process race in test_ledger_concurrency.py (not a test module).

Usage: python ledger_race_worker.py DATABASE_URL MERCHANT_ID LOYALTY_ID COUNT KEY_PREFIX [POINTS [same-key]]

Connects, prints ``ready``, waits for a line on stdin (so that both processes start
together), then runs COUNT concurrent redemptions of POINTS (default 1) points, each with its own key or,
with ``same-key``, all with the key KEY_PREFIX, and prints a JSON object
counting the outcomes: ``{"OK": n, "INSUFFICIENT_POINTS": m, ...}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter

from coalition.config import load_settings
from coalition.db import Database
from coalition.errors import DomainError
from coalition.ledger.service import Ledger


async def race(url: str, merchant_id: int, loyalty_id: str, count: int, prefix: str, points: int = 1,
               same_key: bool = False) -> Counter[str]:
    settings = load_settings({"COALITION_DATABASE_URL": url,
                              "COALITION_SECRET_KEY": os.environ.get("COALITION_SECRET_KEY", "test-secret-key"),
                              "COALITION_REDEEM_WITHOUT_PROOF_POINTS":
                                  os.environ.get("COALITION_REDEEM_WITHOUT_PROOF_POINTS", "")})
    db = Database(settings.database_url, pool_size=10)
    ledger = Ledger(db, settings)
    try:
        # Open the pool's connections before the start signal, so the race is about the ledger.
        await asyncio.gather(*(db.ping() for _ in range(10)))
        print("ready", flush=True)
        sys.stdin.readline()

        async def redeem_one(i: int) -> str:
            try:
                await ledger.redeem(merchant_id=merchant_id, loyalty_id=loyalty_id, points=points,
                                    idempotency_key=prefix if same_key else f"{prefix}-{i}")
            except DomainError as exc:
                return exc.code
            except Exception as exc:  # reported to the test, which fails on it
                return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            return "OK"

        return Counter(await asyncio.gather(*(redeem_one(i) for i in range(count))))
    finally:
        await db.dispose()


def main() -> None:
    url, merchant_id, loyalty_id, count, prefix = sys.argv[1:6]
    points = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    same_key = len(sys.argv) > 7 and sys.argv[7] == "same-key"
    outcomes = asyncio.run(race(url, int(merchant_id), loyalty_id, int(count), prefix, points, same_key))
    print(json.dumps(dict(outcomes)), flush=True)


if __name__ == "__main__":
    main()
