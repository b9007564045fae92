"""Guessing API keys from one address: how many guesses reach a lookup, how many are refused.

    PYTHONPATH=$PWD .venv/bin/python bench/key_guessing.py [--guesses 9000] [--concurrency 16]

Builds the application on a fresh SQLite file (in-process limits, the default failure
budget of 30 a minute), sends ``--guesses`` random ``coa_`` keys as ``Authorization:
Bearer`` from one client address through the ASGI app, ``--concurrency`` at a time, and
counts the answers (401: looked up and wrong; 429: refused before any lookup) and the
lookups that reached the authenticator. Then a good key from another address, which must
still answer 200. The issue's finding: 9,000 guesses at 340/s, none refused.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from coalition.app import create_app
from coalition.auth.service import create_admin_key
from coalition.config import load_settings
from coalition.db import Database
from coalition.models import Base


async def main(guesses: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'guess.db'}"
        db = Database(url, pool_size=2)
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        good_key = await create_admin_key(db, label="bench")
        await db.dispose()
        settings = load_settings({"COALITION_DATABASE_URL": url, "COALITION_SECRET_KEY": "bench-secret",
                                  "COALITION_RATE_LIMIT_PER_S": "100000"})
        app = create_app(settings)
        lookups = 0
        authenticate = app.state.authenticator.authenticate

        async def counted(credential: str) -> Any:
            nonlocal lookups
            lookups += 1
            return await authenticate(credential)

        app.state.authenticator.authenticate = counted
        statuses: Counter[int] = Counter()
        queue = iter(range(guesses))
        transport = httpx.ASGITransport(app=app, client=("203.0.113.66", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as attacker:

            async def guesser() -> None:
                for _ in queue:
                    response = await attacker.post("/graphql", json={"query": "{ viewer { __typename } }"},
                                                   headers={"Authorization": f"Bearer coa_{secrets.token_urlsafe(32)}"})
                    statuses[response.status_code] += 1

            started = time.perf_counter()
            await asyncio.gather(*(guesser() for _ in range(concurrency)))
            seconds = time.perf_counter() - started
        transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as shop:
            good = await shop.post("/graphql", json={"query": "{ viewer { __typename } }"},
                                   headers={"Authorization": f"Bearer {good_key}"})
        await app.state.limiter.aclose()
        await app.state.services.db.dispose()
    print(f"guesses {guesses} in {seconds:.1f} s ({guesses / seconds:,.0f}/s) from one address, "
          f"{concurrency} at a time")
    print(f"  401 (looked up, wrong): {statuses[401]}   429 (refused before a lookup): {statuses[429]}   "
          f"other: {sum(n for s, n in statuses.items() if s not in (401, 429))}")
    print(f"  lookups that reached the authenticator: {lookups}")
    print(f"  a good key from another address: HTTP {good.status_code}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guesses", type=int, default=9000)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.guesses, arguments.concurrency))
