"""What an earnPoints request costs besides its own statement: database reads and Python calls, in process.

    PYTHONPATH=. .venv/bin/python bench/request_reads.py [--requests 800] [--members 300] [--fresh]

Drives the app (``create_app``, the bench's settings) through httpx's ASGI transport, no
uvicorn: 300 sequential earns to warm up, then ``--requests`` earns 16 at a time, three
times, printing the CPU per request (httpx's client included) and, for the whole run, how
many ``Database.read`` transactions the app opened per earn (the per-process caches' reads:
docs/benchmarks-journal.md, finding 10) and the Python calls per earn (``sys.setprofile``:
the same count on any machine, so two trees compare on a busy one). Uses the seeded
``coalition_bench`` (``COALITION_BENCH_DB``), rebuilt with ``--fresh``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchlib.env import BENCH_DB, bench_env, pg_url
from benchlib.seeding import ensure_pg_bench
from benchlib.server import EARN_QUERY

from coalition.db import Database


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args(argv)
    os.environ.update(bench_env(pg_url(BENCH_DB)))
    seed = await ensure_pg_bench(members=args.members, ids_file=Path(f"/tmp/{BENCH_DB}_reads_ids.txt"),
                                 fresh=args.fresh)
    import httpx

    from coalition.app import create_app

    reads = 0
    plain_read = Database.read

    @contextlib.asynccontextmanager
    async def counted_read(self: Database) -> AsyncIterator[Any]:
        nonlocal reads
        reads += 1
        async with plain_read(self) as conn:
            yield conn

    Database.read = counted_read  # type: ignore[method-assign,assignment]
    app = create_app()
    tag, sent, ids = f"reads-{time.time_ns()}", 0, seed.loyalty_ids
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench",
            headers={"Authorization": f"Bearer {seed.api_key}"}) as client:

        async def earn() -> None:
            nonlocal sent
            sent += 1
            response = await client.post("/graphql", json={"query": EARN_QUERY, "variables": {
                "lid": ids[sent % len(ids)], "amt": 1000 + sent % 5000, "k": f"{tag}-{sent}"}})
            body = response.json()
            assert response.status_code == 200 and not body.get("errors"), body
            assert not body["data"]["earnPoints"]["userErrors"], body

        for _ in range(300):
            await earn()
        reads, first = 0, sent
        for _ in range(3):
            started = time.process_time()
            for _ in range(args.requests // 16):
                await asyncio.gather(*(earn() for _ in range(16)))
            print(f"16 at a time: {(time.process_time() - started) / (args.requests // 16 * 16) * 1000:.3f} "
                  "ms of CPU per request")
        calls = 0

        def count(frame: Any, event: str, arg: Any) -> None:
            nonlocal calls
            if event in ("call", "c_call"):
                calls += 1

        counted = sent
        sys.setprofile(count)
        for _ in range(200 // 16):
            await asyncio.gather(*(earn() for _ in range(16)))
        sys.setprofile(None)
        print(f"Python calls per request: {calls / (sent - counted):.0f}")
        print(f"database reads per request: {reads / (sent - first):.3f} ({reads} for {sent - first} earns)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
