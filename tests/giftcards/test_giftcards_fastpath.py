"""The one-statement gift card spend and authorization on PostgreSQL (coalition.giftcards.fastpath).

A spend on the fast path must write exactly what the multi-statement path writes (entry,
card, postings, hold), answer a retry the same, and hand every unusual case to that path
with nothing of its own attempt left behind. The other gift card tests run on both paths
through the ``gift_path`` fixture; this module checks the path itself.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from coalition.giftcards import codes, fastpath
from coalition.giftcards.models import GiftEntry, GiftHold, GiftPosting
from coalition.partners.models import MerchantStatus
from coalition.partners.service import set_merchant_status

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="the fast path is PostgreSQL's: set COALITION_TEST_DATABASE_URL")

ENTRY_IDENTITY = {"id", "card_id", "idempotency_key", "request_hash", "created_at"}


@pytest.fixture
def gift_path() -> str:
    """This module compares the two paths itself: its service has the fast path on."""
    return "fast"


class GeneralPathCalls:
    """Counts the spends that reached the multi-statement path."""

    def __init__(self, gift: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = gift._spend_in_tx

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(gift, "_spend_in_tx", counted)


@pytest.fixture
def general(shops: Any, monkeypatch: pytest.MonkeyPatch) -> GeneralPathCalls:
    return GeneralPathCalls(shops.gift, monkeypatch)


async def written(db: Any, entry_id: int) -> tuple[dict[str, Any], list[tuple[Any, ...]], dict[str, Any] | None]:
    """The entry (without the columns that say which), its postings (holder as CARD or the merchant id)
    and its hold, as stored."""
    async with db.read() as conn:
        entry = dict((await conn.execute(select(GiftEntry).where(GiftEntry.id == entry_id))).one()._mapping)
        postings = sorted((str(p.account), p.asset, p.currency, p.amount_minor,
                           ("card", p.account_id == entry["card_id"]) if p.account.startswith("CARD") else p.account_id)
                          for p in await conn.execute(select(GiftPosting).where(GiftPosting.entry_id == entry_id)))
        hold_row = (await conn.execute(select(GiftHold).where(GiftHold.id == entry_id))).first()
    hold = None if hold_row is None else {k: v for k, v in hold_row._mapping.items()
                                          if k not in {"id", "card_id", "created_at", "expires_at"}}
    return {k: v for k, v in entry.items() if k not in ENTRY_IDENTITY}, postings, hold


async def test_a_spend_is_one_statement_and_writes_what_the_general_path_writes(
        shops: Any, general: GeneralPathCalls, db: Any, gprobe: Any) -> None:
    fast_card, general_card = await shops.issue(1000), await shops.issue(1000)
    fast = await shops.spend(fast_card.code, 250, key="same-key-a")
    assert general.count == 0
    shops.gift.fast_path = False
    slow = await shops.spend(general_card.code, 250, key="same-key-b")
    assert general.count == 1
    assert await written(db, fast.entry.id) == await written(db, slow.entry.id)
    # the results say the same as what is stored
    for result in (fast, slow):
        card = await gprobe.card(result.card.id)
        assert (result.card.balance_minor, result.card.held_minor) == (card.balance_minor, card.held_minor) == (750, 0)
        assert (result.entry.kind, result.entry.amount_minor, result.entry.spent_minor) == ("REDEEM", -250, 250)
    # and a retry of the fast spend replays it (the general path reads the entry back)
    shops.gift.fast_path = True
    again = await shops.spend(fast_card.code, 250, key="same-key-a")
    assert again.replayed and again.entry.id == fast.entry.id and general.count == 2
    assert (await gprobe.card(fast_card.card.id)).balance_minor == 750


async def test_an_authorization_is_one_statement_and_writes_what_the_general_path_writes(
        shops: Any, general: GeneralPathCalls, db: Any) -> None:
    fast_card, general_card = await shops.issue(1000), await shops.issue(1000)

    async def authorize(code: str) -> Any:
        return await shops.gift.authorize(merchant_id=shops.b.id, caller_key="m", code=code, amount_minor=300,
                                          idempotency_key=shops.key("auth"), expires_in_s=600)

    fast = await authorize(fast_card.code)
    assert general.count == 0
    shops.gift.fast_path = False
    slow = await authorize(general_card.code)
    assert await written(db, fast.entry.id) == await written(db, slow.entry.id)
    assert fast.hold is not None and slow.hold is not None
    assert (fast.hold.id, fast.hold.status, fast.hold.amount_minor, fast.hold.expires_at) == (
        fast.entry.id, slow.hold.status, 300, slow.hold.expires_at)
    assert (fast.card.balance_minor, fast.card.held_minor) == (slow.card.balance_minor, slow.card.held_minor)
    # the fast hold captures like any other
    captured = await shops.gift.capture(merchant_id=shops.b.id, hold_id=fast.hold.id, amount_minor=100,
                                        idempotency_key=shops.key("cap"))
    assert (captured.card.balance_minor, captured.card.held_minor) == (900, 0)  # 700 + the 200 released


@pytest.mark.parametrize("case", ["insufficient", "unknown card", "suspended", "key conflict", "kept refusal"])
async def test_unusual_spends_go_to_the_general_path_and_leave_nothing_behind(
        shops: Any, general: GeneralPathCalls, gprobe: Any, db: Any, case: str) -> None:
    sold = await shops.issue(100)
    code, amount, key = sold.code, 50, shops.key("spend")
    expected = {"insufficient": "INSUFFICIENT_FUNDS", "unknown card": "GIFT_CARD_NOT_FOUND",
                "suspended": "MERCHANT_SUSPENDED", "key conflict": "IDEMPOTENCY_KEY_CONFLICT",
                "kept refusal": "INSUFFICIENT_FUNDS"}[case]
    if case == "insufficient":
        amount = 101
    elif case == "unknown card":
        code = codes.new_code(shops.gift.keys)  # this network's, well formed, sold to nobody
    elif case == "suspended":
        await set_merchant_status(db, shops.b.id, MerchantStatus.SUSPENDED)
    elif case == "key conflict":
        await shops.spend(code, 10, key=key)
    elif case == "kept refusal":  # refused once; the card can pay since, but the key's refusal answers
        first = await shops.spend(code, 50)
        await gprobe.unchanged("INSUFFICIENT_FUNDS", lambda: shops.spend(code, 60, key=key))
        await shops.gift.refund(merchant_id=shops.b.id, entry_id=first.entry.id, idempotency_key=shops.key("r"))
        amount = 60
    calls = general.count
    await gprobe.unchanged(expected, lambda: shops.spend(code, amount, key=key))
    assert general.count == calls + 1


async def test_concurrent_fast_spends_of_many_cards_batch_and_never_overspend(
        shops: Any, general: GeneralPathCalls, gprobe: Any) -> None:
    cards = [await shops.issue(20) for _ in range(5)]

    async def spend(i: int) -> str:
        try:
            await shops.spend(cards[i % 5].code, 3, key=f"c-{i}")
        except Exception as exc:
            return getattr(exc, "code", repr(exc))
        return "OK"

    results = Counter(await asyncio.gather(*(spend(i) for i in range(60))))
    assert results == {"OK": 30, "INSUFFICIENT_FUNDS": 30}, results
    for sold in cards:
        assert (await gprobe.card(sold.card.id)).balance_minor == 2
    assert general.count < 60  # most went through the one statement


def test_the_postings_of_each_movement_balance() -> None:
    for movement in (fastpath.SPEND_LEGS, fastpath.HOLD_LEGS):
        assert sum(amount for _, _, amount in fastpath.legs(movement, card_id=1, merchant_id=2, amount=7)) == 0
