"""One process of the cross-process earn race in test_program_races.py (not a test module).

Usage: python program_earn_worker.py DATABASE_URL MERCHANT_ID LOYALTY_IDS(comma-separated) PER_MEMBER KEY_PREFIX

Prints ``ready``, waits for a line on stdin, then earns 10.00 PER_MEMBER times for every member, all at
once, with keys ``KEY_PREFIX-<loyalty id>-<i>`` (two processes given the same prefix retry each other's
requests), and prints a JSON object: the outcomes counted, and the points each key got.
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
from coalition.programs.earning import ProgramHook


async def race(url: str, merchant_id: int, loyalty_ids: list[str], per_member: int, prefix: str) -> dict[str, object]:
    settings = load_settings({"COALITION_DATABASE_URL": url,
                              "COALITION_SECRET_KEY": os.environ.get("COALITION_SECRET_KEY", "test-secret-key")})
    db = Database(settings.database_url, pool_size=10)
    ledger = Ledger(db, settings, programs=ProgramHook(db))
    points: dict[str, int] = {}
    try:
        await asyncio.gather(*(db.ping() for _ in range(10)))
        print("ready", flush=True)
        sys.stdin.readline()

        async def earn(lid: str, i: int) -> str:
            key = f"{prefix}-{lid}-{i}"
            try:
                result = await ledger.earn(merchant_id=merchant_id, loyalty_id=lid, purchase_amount_minor=1000,
                                           idempotency_key=key)
            except DomainError as exc:
                return exc.code
            except Exception as exc:  # reported to the test, which fails on it
                return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            points[key] = result.entry.points
            return "OK"

        outcomes = Counter(await asyncio.gather(*(earn(lid, i) for lid in loyalty_ids for i in range(per_member))))
        return {"outcomes": dict(outcomes), "points": points}
    finally:
        await db.dispose()


def main() -> None:
    url, merchant_id, lids, per_member, prefix = sys.argv[1:6]
    print(json.dumps(asyncio.run(race(url, int(merchant_id), lids.split(","), int(per_member), prefix))), flush=True)


if __name__ == "__main__":
    main()
