"""Stamp cards: an earn stamps, a full card issues a voucher and starts the next, a reversal takes its stamp back."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from coalition.programs import stamps, vouchers
from coalition.programs.hooks import after_earn, after_reversal
from coalition.programs.reward_models import Voucher, VoucherStatus
from coalition.programs.rewards import create_reward


async def card(shops: Any, required: int = 3, min_purchase: int = 500, shop: Any = None) -> Any:
    shop = shop or shops.a
    rw = await create_reward(shops.ledger.db, merchant_id=shop.id, name="Free coffee", points_cost=50,
                             idempotency_key=shops.key("rw"), now=shops.now)
    return await stamps.create_stamp_card(shops.ledger, merchant_id=shop.id, name="Coffee card",
                                          stamps_required=required, min_purchase_minor=min_purchase,
                                          reward_id=rw.id, idempotency_key=shops.key("card"), now=shops.now)


async def buy(shops: Any, member: Any, amount: int, shop: Any = None, key: str | None = None) -> Any:
    result = await shops.ledger.earn(merchant_id=(shop or shops.a).id, loyalty_id=member.loyalty_id,
                                     purchase_amount_minor=amount, idempotency_key=key or shops.key("buy"))
    await after_earn(shops.ledger, result)
    return result


async def progress(shops: Any, member: Any, merchant_id: int | None = None) -> list[tuple[int, int, int]]:
    rows = await stamps.member_stamp_progress(shops.ledger.db, member_id=member.id, merchant_id=merchant_id)
    return [(r.id, stamps.stamps_on_current_card(r.total_stamps, r.completed_cards, r.stamps_required),
             r.completed_cards) for r in rows]


async def member_vouchers(db: Any, member: Any) -> list[Any]:
    async with db.read() as conn:
        return list(await conn.execute(select(Voucher).where(Voucher.member_id == member.id).order_by(Voucher.id)))


async def test_a_full_card_issues_a_voucher_and_starts_the_next(shops: Any, db: Any) -> None:
    c = await card(shops, required=3, min_purchase=500)
    member = await shops.member()
    await buy(shops, member, 499)  # below the minimum: no stamp
    await buy(shops, member, 500, shop=shops.b)  # another merchant: no stamp
    assert await progress(shops, member) == []
    for _ in range(2):
        await buy(shops, member, 500)
    assert await progress(shops, member) == [(c.id, 2, 0)]
    await buy(shops, member, 900)
    assert await progress(shops, member) == [(c.id, 0, 1)]
    (v,) = await member_vouchers(db, member)
    assert (v.status, v.points, v.stamp_card_id, v.redeem_entry_id) == (VoucherStatus.ISSUED, 0, c.id, None)
    await buy(shops, member, 500)
    assert await progress(shops, member) == [(c.id, 1, 1)]
    # a merchant sees its own cards only
    assert await progress(shops, member, merchant_id=shops.b.id) == []


async def test_a_retried_earn_stamps_once(shops: Any) -> None:
    c = await card(shops, required=5)
    member = await shops.member()
    for _ in range(3):
        await buy(shops, member, 600, key="same")
    assert await progress(shops, member) == [(c.id, 1, 0)]


async def test_concurrent_earns_stamp_each_once(shops: Any, db: Any) -> None:
    c = await card(shops, required=4)
    member = await shops.member()
    await asyncio.gather(*(buy(shops, member, 600, key=f"b{i}") for i in range(10)))
    assert await progress(shops, member) == [(c.id, 2, 2)]
    assert len(await member_vouchers(db, member)) == 2


async def test_reversing_a_purchase_removes_its_stamp_or_cancels_the_voucher(shops: Any, db: Any) -> None:
    c = await card(shops, required=2)
    member = await shops.member()
    first = await buy(shops, member, 600)
    # the stamp of an open card goes
    reversed_ = await shops.ledger.reverse(merchant_id=shops.a.id, transaction_id=first.entry.id,
                                           idempotency_key="r1")
    await after_reversal(shops.ledger, reversed_)
    await after_reversal(shops.ledger, reversed_)  # twice changes nothing more
    assert await progress(shops, member) == [(c.id, 0, 0)]
    # a full card whose voucher is unused: the voucher is cancelled and the card open again
    await buy(shops, member, 600)
    last = await buy(shops, member, 600)
    assert await progress(shops, member) == [(c.id, 0, 1)]
    reversed_ = await shops.ledger.reverse(merchant_id=shops.a.id, transaction_id=last.entry.id,
                                           idempotency_key="r2")
    await after_reversal(shops.ledger, reversed_)
    assert await progress(shops, member) == [(c.id, 1, 0)]
    (v,) = await member_vouchers(db, member)
    assert v.status == VoucherStatus.CANCELLED
    # a full card whose voucher was used: the stamp is owed, the next purchase repays it
    last = await buy(shops, member, 600)
    (_, v2) = await member_vouchers(db, member)
    await vouchers.use_voucher(shops.ledger, merchant_id=shops.a.id, code=v2.code, idempotency_key="u",
                               now=shops.now)
    reversed_ = await shops.ledger.reverse(merchant_id=shops.a.id, transaction_id=last.entry.id,
                                           idempotency_key="r3")
    await after_reversal(shops.ledger, reversed_)
    assert await progress(shops, member) == [(c.id, 0, 1)]
    await buy(shops, member, 600)
    assert await progress(shops, member) == [(c.id, 0, 1)]
    await buy(shops, member, 600)
    assert await progress(shops, member) == [(c.id, 1, 1)]


async def test_bad_stamp_cards_write_nothing(shops: Any, tables: Any) -> None:
    rw = await create_reward(shops.ledger.db, merchant_id=shops.a.id, name="Gift", points_cost=10,
                             idempotency_key="rw", now=shops.now)
    other = await create_reward(shops.ledger.db, merchant_id=shops.b.id, name="Gift", points_cost=10,
                                idempotency_key="rw", now=shops.now)

    def create(**fields: Any) -> Any:
        values = {"name": "Card", "stamps_required": 5, "min_purchase_minor": 100, "reward_id": rw.id,
                  "idempotency_key": "c"} | fields
        return stamps.create_stamp_card(shops.ledger, merchant_id=shops.a.id, now=shops.now, **values)

    cases = [({"stamps_required": 0}, "INVALID_STAMPS"), ({"stamps_required": -1}, "INVALID_STAMPS"),
             ({"stamps_required": 10**9}, "INVALID_STAMPS"), ({"min_purchase_minor": -1}, "INVALID_AMOUNT"),
             ({"min_purchase_minor": 2**40}, "INVALID_AMOUNT"), ({"reward_id": other.id}, "REWARD_NOT_FOUND"),
             ({"reward_id": 10**12}, "REWARD_NOT_FOUND"), ({"name": " "}, "INVALID_NAME")]
    for fields, code in cases:
        await tables.unchanged(code, lambda fields=fields: create(**fields))
    made = await create()
    assert (await create()).id == made.id
    await tables.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: create(stamps_required=6))


async def test_an_earn_where_no_program_runs_costs_no_round_trip(shops: Any, monkeypatch: Any) -> None:
    await card(shops, shop=shops.a)
    member = await shops.member()
    await buy(shops, member, 600, shop=shops.a)  # the directory of programs is loaded once per interval
    earned = await shops.ledger.earn(merchant_id=shops.b.id, loyalty_id=member.loyalty_id,
                                     purchase_amount_minor=600, idempotency_key="elsewhere")

    def no_database(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the programs' hook touched the database for a merchant without programs")

    monkeypatch.setattr(shops.ledger.db, "read", no_database)
    monkeypatch.setattr(shops.ledger.db, "transaction", no_database)
    await after_earn(shops.ledger, earned)


async def test_a_retry_of_a_created_stamp_card_replays_after_the_merchant_is_suspended(shops: Any,
                                                                                      tables: Any) -> None:
    from coalition.partners.models import MerchantStatus
    from coalition.partners.service import set_merchant_status

    rw = await create_reward(shops.ledger.db, merchant_id=shops.a.id, name="Free coffee", points_cost=50,
                             idempotency_key="rw", now=shops.now)

    def create(key: str = "card", required: int = 5, reward_id: int = rw.id) -> Any:
        return stamps.create_stamp_card(shops.ledger, merchant_id=shops.a.id, name="Coffee card",
                                        stamps_required=required, min_purchase_minor=0, reward_id=reward_id,
                                        idempotency_key=key, now=shops.now)

    first = await create()
    await set_merchant_status(shops.ledger.db, shops.a.id, MerchantStatus.SUSPENDED)
    assert (await create()).id == first.id
    await tables.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: create(required=6))
    # suspended comes before not found: a suspended merchant learns nothing about reward IDs
    await tables.unchanged("MERCHANT_SUSPENDED", lambda: create(key="card-2", reward_id=rw.id + 1000))
    await set_merchant_status(shops.ledger.db, shops.a.id, MerchantStatus.ACTIVE)
    await tables.unchanged("REWARD_NOT_FOUND", lambda: create(key="card-3", reward_id=rw.id + 1000))


async def test_the_one_live_earn_stamps_and_its_retry_repairs_a_stamp_a_crash_lost(shops: Any) -> None:
    from coalition.programs import purchases

    stamp_card = await card(shops, required=2, min_purchase=500)
    member = await shops.member()

    def earn(key: str) -> Any:
        return purchases.earn(shops.ledger, merchant_id=shops.a.id, loyalty_id=member.loyalty_id,
                              purchase_amount_minor=600, idempotency_key=key)

    await earn("p1")
    assert await progress(shops, member) == [(stamp_card.id, 1, 0)]
    # the process dies after the earn committed, before the stamp: the ledger has it, the card does not
    await shops.ledger.earn(merchant_id=shops.a.id, loyalty_id=member.loyalty_id, purchase_amount_minor=600,
                            idempotency_key="p2")
    assert await progress(shops, member) == [(stamp_card.id, 1, 0)]
    # the client heard nothing and retries: the earn replays and the stamp is applied, once
    await earn("p2")
    await earn("p2")
    assert await progress(shops, member) == [(stamp_card.id, 0, 1)]
    assert len(await member_vouchers(shops.ledger.db, member)) == 1
    # a refund through the one reversal takes the stamp (and the unused voucher) back
    earned = await earn("p3")
    undone = await purchases.reverse(shops.ledger, merchant_id=shops.a.id, transaction_id=earned.entry.id,
                                     idempotency_key="refund")
    assert undone.entry.reverses_id == earned.entry.id
    assert await progress(shops, member) == [(stamp_card.id, 0, 1)]


def test_only_the_programs_purchases_apply_the_programs_after_a_write() -> None:
    """Every live earn and refund goes through coalition/programs/purchases.py: no caller runs the hooks itself,
    and no live caller outside the ledger, the portability import and the gift cards calls Ledger.earn."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "coalition"
    callers = {str(p.relative_to(root)) for p in root.rglob("*.py")
               if "after_earn(" in p.read_text() or "after_reversal(" in p.read_text()}
    assert callers == {"programs/hooks.py", "programs/purchases.py"}
    mutations = (root / "graphql" / "ledger" / "mutations.py").read_text()
    assert "purchases.earn(" in mutations and "purchases.reverse(" in mutations
    assert "ledger.earn(" not in mutations and "ledger.reverse(" not in mutations
