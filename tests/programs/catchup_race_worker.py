"""One process of the cross-process catch-up race in test_catchup_race.py (not a test module).

Usage: python catchup_race_worker.py DATABASE_URL NOW ENTRY_ID...

Connects, prints ``ready``, waits for a line on stdin, then at once runs the programs job twice
(at NOW, ISO 8601) and the live hook late for each earn ENTRY_ID, and prints what the two jobs
applied as JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys

from sqlalchemy import select

from coalition.config import load_settings
from coalition.db import Database
from coalition.ledger.core import LedgerResult
from coalition.ledger.idempotency import as_model
from coalition.ledger.models import Entry
from coalition.ledger.service import Ledger
from coalition.programs import catchup
from coalition.programs.hooks import after_earn


async def race(url: str, now: dt.datetime, entry_ids: list[int]) -> list[int]:
    settings = load_settings({"COALITION_DATABASE_URL": url,
                              "COALITION_SECRET_KEY": os.environ.get("COALITION_SECRET_KEY", "test-secret-key")})
    db = Database(settings.database_url, pool_size=10)
    ledger = Ledger(db, settings, clock=lambda: now)
    try:
        async with db.read() as conn:
            entries = [as_model(Entry, row) for row in await conn.execute(
                select(*Entry.__table__.c).where(Entry.id.in_(entry_ids)))]
        print("ready", flush=True)
        sys.stdin.readline()

        async def job() -> int:
            done = await catchup.catch_up(ledger, now=now, look_back_s=settings.programs_catchup_s,
                                          grace_s=settings.programs_catchup_grace_s)
            return done.total

        async def hook(entry: Entry) -> int:
            await after_earn(ledger, LedgerResult(entry=entry, member=None))  # type: ignore[arg-type]
            return 0

        return list(await asyncio.gather(job(), job(), *(hook(e) for e in entries)))[:2]
    finally:
        await db.dispose()


def main() -> None:
    url, now, *entry_ids = sys.argv[1:]
    print(json.dumps(asyncio.run(race(url, dt.datetime.fromisoformat(now), [int(i) for i in entry_ids]))),
          flush=True)


if __name__ == "__main__":
    main()
