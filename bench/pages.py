"""Server time of every page at 100k members: the issue's target is < 100 ms each.

    python bench/pages.py [--members 100000] [--repeats 20] [--db-url URL]

Bulk-loads the synthetic demo network (``coalition.demo.create_synthetic_demo``: a year of
history, 10 purchases per member, one merchant per 2,000 members) into a fresh SQLite file
in a temporary directory (or ``--db-url``, which is migrated and loaded into), runs the
analysis once, creates an owner for merchant 1, an admin and a claimed member wallet, then
renders each page ``--repeats`` times in process (httpx over ASGI: the server's time,
no network) and prints the median and the worst per page.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from page_world import PASSWORD, csrf_of

from coalition.app import create_app
from coalition.config import load_settings
from coalition.console.models import StaffRole
from coalition.console.service import create_user
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.demo import create_synthetic_demo
from coalition.members.credentials import issue_claim_code
from coalition.migrate import migrate
from coalition.network.jobs import run_analysis

OWNER_PAGES = ["/console", "/console/till", "/console/till?q={loyalty}", "/console/customers",
               "/console/customers/{loyalty}", "/console/insights", "/console/insights/win-back.csv",
               "/console/statements", "/console/staff"]
ADMIN_PAGES = ["/admin", "/admin/merchants", "/admin/fraud", "/admin/network"]


async def timed(client: httpx.AsyncClient, url: str, repeats: int) -> tuple[float, float, int]:
    times = []
    status = 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = await client.get(url, headers={"Accept": "text/html"})
        times.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    return statistics.median(times), max(times), status


async def sign_in(client: httpx.AsyncClient, email: str) -> None:
    form = await client.get("/login")
    await client.post("/login", data={"email": email, "password": PASSWORD, "csrf": csrf_of(form.text), "next": ""})


async def main(members: int, repeats: int, db_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"COALITION_DATABASE_URL": db_url or f"sqlite+aiosqlite:///{tmp}/bench.db",
                                  "COALITION_SECRET_KEY": "bench", "COALITION_RATE_LIMIT_PER_S": "1000000",
                                  "COALITION_AUTH_CACHE_S": "2"})
        await migrate(settings)
        db = Database(settings.database_url, pool_size=4)
        keys = NetworkKeys.from_settings(settings)
        started = time.perf_counter()
        demo = await create_synthetic_demo(db, settings, keys, members=members)
        await run_analysis(db, settings)
        print(f"loaded {members:,} members, {demo.total_merchants} merchants, "
              f"{sum(demo.transactions.values()):,} transactions, analysed, in {time.perf_counter() - started:.0f} s")
        await create_user(db, email="owner@bench.example", password=PASSWORD, role=StaffRole.OWNER, merchant_id=1)
        await create_user(db, email="admin@bench.example", password=PASSWORD, role=StaffRole.ADMIN, merchant_id=None)
        async with db.read() as conn:
            from sqlalchemy import select

            from coalition.ledger.models import Entry
            from coalition.members.models import Member

            row = (await conn.execute(select(Member.id, Member.loyalty_id).join(Entry, Entry.member_id == Member.id)
                                      .where(Entry.merchant_id == 1).limit(1))).one()
        async with db.sessions.begin() as session:
            from coalition.db import utcnow

            claim = await issue_claim_code(session, row.id, now=utcnow(), ttl_s=3600)
        await db.dispose()
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            results = []
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as owner:
                await sign_in(owner, "owner@bench.example")
                for page in OWNER_PAGES:
                    url = page.format(loyalty=row.loyalty_id)
                    results.append((url, *await timed(owner, url, repeats)))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as admin:
                await sign_in(admin, "admin@bench.example")
                for url in ADMIN_PAGES:
                    results.append((url, *await timed(admin, url, repeats)))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as member:
                form = await member.get(f"/me/claim?code={claim.code}")
                await member.post("/me/claim", data={"code": claim.code, "csrf": csrf_of(form.text)})
                results.append(("/me", *await timed(member, "/me", repeats)))
        print(f"{'page':45} {'median ms':>10} {'max ms':>8} status")
        for url, median, worst, status in results:
            flag = "" if median < 100 else "  OVER 100 ms"
            print(f"{url.replace(row.loyalty_id, '<loyalty>'):45} {median:10.1f} {worst:8.1f} {status}{flag}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--db-url")
    args = parser.parse_args()
    asyncio.run(main(args.members, args.repeats, args.db_url))
