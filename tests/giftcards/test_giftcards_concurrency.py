"""Never overspent, exactly once: gift cards under concurrent requests and two processes."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from process_race import race
from sqlalchemy import func, select

from coalition.errors import DomainError
from coalition.giftcards.models import GiftAccount, GiftEntry, GiftPosting

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
WORKER = Path(__file__).with_name("giftcard_race_worker.py")
ROOT = Path(__file__).resolve().parents[2]


async def outcome(call: Callable[[], Awaitable[Any]]) -> str:
    try:
        await call()
    except DomainError as exc:
        return exc.code
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "OK"


async def spent_total(db: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.coalesce(func.sum(GiftPosting.amount_minor), 0)).where(
            GiftPosting.account == GiftAccount.SPENT))).scalar_one())


async def test_200_concurrent_spends_never_overspend_one_card(shops: Any, gprobe: Any, db: Any) -> None:
    # given a card holding 1.50
    sold = await shops.issue(150)
    # when 200 one-cent spends at three partners race
    merchants = [shops.a, shops.b, shops.c]
    results = await asyncio.gather(*(outcome(lambda i=i: shops.spend(sold.code, 1, merchants[i % 3], key=f"s-{i}"))
                                     for i in range(200)))
    # then exactly 150 went through, the rest were refused, and the card is at zero
    assert Counter(results) == {"OK": 150, "INSUFFICIENT_FUNDS": 50}, Counter(results)
    card = await gprobe.card(sold.card.id)
    assert (card.balance_minor, card.held_minor) == (0, 0)
    assert await spent_total(db) == 150


async def test_concurrent_holds_and_spends_share_one_balance(shops: Any, gprobe: Any) -> None:
    sold = await shops.issue(100)

    async def hold(i: int) -> Any:
        return await shops.gift.authorize(merchant_id=shops.b.id, caller_key="m", code=sold.code, amount_minor=3,
                                          idempotency_key=f"h-{i}")

    results = await asyncio.gather(*(outcome(lambda i=i: hold(i) if i % 2 else shops.spend(sold.code, 3))
                                     for i in range(60)))
    assert Counter(results) == {"OK": 33, "INSUFFICIENT_FUNDS": 27}, Counter(results)
    card = await gprobe.card(sold.card.id)
    assert card.balance_minor == 1 and card.balance_minor + card.held_minor <= 100


async def test_concurrent_retries_with_one_key_spend_once(shops: Any, db: Any) -> None:
    sold = await shops.issue(1000)
    results = await asyncio.gather(*(outcome(lambda: shops.spend(sold.code, 10, key="same")) for _ in range(50)))
    assert Counter(results) == {"OK": 50}
    async with db.read() as conn:
        spends = (await conn.execute(select(func.count()).select_from(GiftEntry).where(
            GiftEntry.idempotency_key == "same"))).scalar_one()
    assert spends == 1 and await spent_total(db) == 10


async def test_concurrent_issues_with_one_key_sell_one_card(shops: Any, gprobe: Any) -> None:
    results = await asyncio.gather(*(shops.gift.issue(merchant_id=shops.a.id, amount_minor=500,
                                                      idempotency_key="one-sale") for _ in range(20)))
    assert len({r.card.id for r in results}) == 1
    assert sum(r.code is not None for r in results) == 1  # the code was shown once
    assert (await gprobe.snapshot())["counts"]["gift_cards"] == 1


async def test_concurrent_refunds_of_one_spend_refund_once(shops: Any, gprobe: Any) -> None:
    sold = await shops.issue(1000)
    spent = await shops.spend(sold.code, 400)
    results = await asyncio.gather(*(outcome(lambda i=i: shops.gift.refund(
        merchant_id=shops.b.id, entry_id=spent.entry.id, idempotency_key=f"r-{i}")) for i in range(10)))
    assert Counter(results) == {"OK": 1, "ALREADY_REFUNDED": 9}, Counter(results)
    assert (await gprobe.card(sold.card.id)).balance_minor == 1000


@pytest.mark.services
@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set COALITION_TEST_DATABASE_URL (make test-services)")
async def test_two_processes_racing_on_one_card_never_overspend(shops: Any, gprobe: Any, db: Any,
                                                                settings: Any, gift_path: str) -> None:
    sold = await shops.issue(150)
    outputs = await race(WORKER, [[settings.database_url, str(shops.b.id), sold.code, "100", f"proc{i}", gift_path]
                                  for i in range(2)])
    counts = [Counter(out) for out in outputs]
    assert sum(counts, Counter()) == {"OK": 150, "INSUFFICIENT_FUNDS": 50}, counts
    assert all(c["OK"] > 0 for c in counts), counts
    card = await gprobe.card(sold.card.id)
    assert (card.balance_minor, card.held_minor) == (0, 0)
    assert await spent_total(db) == 150
