"""One process of the cross-process claim race in test_claim_race.py (not a test module).

Usage: python claim_race_worker.py DATABASE_URL MERCHANT_ID REWARD_ID KEY_PREFIX LOYALTY_ID...

Connects, prints ``ready``, waits for a line on stdin, then claims the reward once for each loyalty ID
at once (merchant at the till, keys KEY_PREFIX-<n>), and prints the outcomes counted by code as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter

from coalition.config import load_settings
from coalition.db import Database, utcnow
from coalition.errors import DomainError
from coalition.ledger.service import Ledger
from coalition.programs.vouchers import claim_reward


async def race(url: str, merchant_id: int, reward_id: int, prefix: str, loyalty_ids: list[str]) -> Counter[str]:
    settings = load_settings({"COALITION_DATABASE_URL": url,
                              "COALITION_SECRET_KEY": os.environ.get("COALITION_SECRET_KEY", "test-secret-key"),
                              "COALITION_REDEEM_WITHOUT_PROOF_POINTS": "1000000"})
    db = Database(settings.database_url, pool_size=10)
    ledger = Ledger(db, settings)
    try:
        await asyncio.gather(*(db.ping() for _ in range(10)))
        print("ready", flush=True)
        sys.stdin.readline()

        async def claim_one(i: int, loyalty_id: str) -> str:
            try:
                await claim_reward(ledger, reward_id=reward_id, loyalty_id=loyalty_id, merchant_id=merchant_id,
                                   idempotency_key=f"{prefix}-{i}", now=utcnow())
            except DomainError as exc:
                return exc.code
            except Exception as exc:  # reported to the test, which fails on it
                return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            return "OK"

        return Counter(await asyncio.gather(*(claim_one(i, lid) for i, lid in enumerate(loyalty_ids))))
    finally:
        await db.dispose()


def main() -> None:
    url, merchant_id, reward_id, prefix, *loyalty_ids = sys.argv[1:]
    print(json.dumps(dict(asyncio.run(race(url, int(merchant_id), int(reward_id), prefix, loyalty_ids)))),
          flush=True)


if __name__ == "__main__":
    main()
