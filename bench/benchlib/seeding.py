"""The bench database: schema, seeded merchant and members (or the ones already there),
and what a run wrote (entries by kind, the ledger invariants).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from benchlib.env import BENCH_DB, bench_settings, log, pg_url
from benchlib.postgres import pg_database_exists, recreate_pg_database
from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.service import Ledger
from coalition.members.service import enroll_member
from coalition.models import Base  # every table, the settlement policy the ledger reads included
from coalition.partners.service import onboard_merchant

SEED_POINTS_MINOR = 10_000_000  # at 1 point per unit: 100,000 points per member, enough for every redeem run


@dataclass
class Seed:
    merchant_id: int
    api_key: str
    loyalty_ids: list[str]
    ids_file: Path


async def create_schema(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def seed(db: Database, settings: Settings, *, members: int, ids_file: Path, concurrency: int = 16) -> Seed:
    """One merchant (earn rate 1 point per currency unit) and ``members`` members, each with points to redeem."""
    keys = NetworkKeys.from_settings(settings)
    onboarding = await onboard_merchant(db, name="Bench Shop", category="bench", earn_rate_points_per_unit=1)
    merchant_id = onboarding.merchant.id
    ledger = Ledger(db, settings)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with semaphore:
            enrollment = await enroll_member(db, keys, merchant_id=merchant_id, idempotency_key=f"seed-enroll-{i}")
            lid = enrollment.member.loyalty_id
            await ledger.earn(merchant_id=merchant_id, loyalty_id=lid, purchase_amount_minor=SEED_POINTS_MINOR,
                              idempotency_key=f"seed-earn-{i}")
            return lid

    started = time.perf_counter()
    loyalty_ids = list(await asyncio.gather(*(one(i) for i in range(members))))
    log(f"seeded {members} members in {time.perf_counter() - started:.1f} s")
    ids_file.write_text("\n".join(loyalty_ids) + "\n")
    return Seed(merchant_id, onboarding.api_key, loyalty_ids, ids_file)


async def setup_bench_database(database_url: str, *, members: int, ids_file: Path) -> Seed:
    settings = bench_settings(database_url)
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        await create_schema(db)
        return await seed(db, settings, members=members, ids_file=ids_file)
    finally:
        await db.dispose()


async def reuse_bench_database(database_url: str, *, members: int, ids_file: Path) -> Seed | None:
    """The seeded bench database as it is, with a fresh merchant key; None when it has too few members."""
    from coalition.auth.models import Role
    from coalition.auth.service import create_api_key
    from coalition.partners.models import Merchant

    db = Database(database_url)
    try:
        async with db.read() as conn:
            merchant_id = (await conn.execute(
                text("SELECT id FROM merchants WHERE name = 'Bench Shop' ORDER BY id LIMIT 1"))).scalar()
            loyalty_ids = [r[0] for r in await conn.execute(
                text("SELECT loyalty_id FROM members WHERE enroll_idempotency_key LIKE 'seed-enroll-%' ORDER BY id"))]
        if merchant_id is None or len(loyalty_ids) < members:
            return None
        async with db.sessions.begin() as session:
            assert await session.get(Merchant, merchant_id) is not None
            api_key = await create_api_key(session, Role.MERCHANT, merchant_id=merchant_id, label="bench")
    finally:
        await db.dispose()
    loyalty_ids = loyalty_ids[:members]
    ids_file.write_text("\n".join(loyalty_ids) + "\n")
    return Seed(int(merchant_id), api_key, loyalty_ids, ids_file)


async def ensure_pg_bench(*, members: int, ids_file: Path, fresh: bool) -> Seed:
    """Reuse ``coalition_bench`` when it holds enough seeded members (unless ``fresh``), else rebuild it."""
    database_url = pg_url(BENCH_DB)
    if not fresh and pg_database_exists(BENCH_DB):
        seed = await reuse_bench_database(database_url, members=members, ids_file=ids_file)
        if seed is not None:
            log(f"reusing {BENCH_DB} ({len(seed.loyalty_ids)} seeded members)")
            return seed
    log(f"recreating {BENCH_DB} and seeding {members} members")
    recreate_pg_database(BENCH_DB)
    return await setup_bench_database(database_url, members=members, ids_file=ids_file)


GIFT_CARD_MINOR = 50_000  # each bench gift card: 50,000 one-unit spends


async def seed_gift_cards(database_url: str, merchant_id: int, *, cards: int, codes_file: Path) -> None:
    """Sell ``cards`` gift cards at the bench merchant and write their codes (shown once) to ``codes_file``."""
    from coalition.giftcards.service import GiftCards

    settings = bench_settings(database_url)
    db = Database(settings.database_url, pool_size=16)
    gift = GiftCards(db, settings, NetworkKeys.from_settings(settings))
    semaphore = asyncio.Semaphore(16)
    tag = f"seed-gift-{time.time_ns()}"

    async def one(i: int) -> str:
        async with semaphore:
            sold = await gift.issue(merchant_id=merchant_id, amount_minor=min(GIFT_CARD_MINOR,
                                    settings.gift_card_max_minor), idempotency_key=f"{tag}-{i}")
            assert sold.code is not None
            return sold.code

    try:
        codes = list(await asyncio.gather(*(one(i) for i in range(cards))))
    finally:
        await db.dispose()
    codes_file.write_text("\n".join(codes) + "\n")
    log(f"sold {cards} gift cards")


async def count_entries(database_url: str, key_prefix: str, table: str = "entries") -> dict[str, int]:
    """Entries (or ``gift_card_entries``) written under idempotency keys starting with ``key_prefix``, by kind."""
    assert table in ("entries", "gift_card_entries")
    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                text(f"SELECT kind, count(*) FROM {table} WHERE idempotency_key LIKE :p GROUP BY kind"),
                {"p": key_prefix + "%"},
            )
            return {str(kind): int(n) for kind, n in rows}
    finally:
        await db.dispose()


async def check_invariants(database_url: str) -> list[str]:
    from coalition.ledger.invariants import ledger_violations

    db = Database(database_url)
    try:
        async with db.read() as conn:
            return await ledger_violations(conn)
    finally:
        await db.dispose()
