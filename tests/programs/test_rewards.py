"""Rewards and vouchers: publish, claim (at the till and from the wallet), use, expire; bad input; races."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from coalition.errors import DomainError
from coalition.ledger.models import Allocation, AllocationKind, Entry, EntryKind
from coalition.ledger.presence import presence_code
from coalition.programs import vouchers
from coalition.programs.reward_models import Reward, Voucher, VoucherStatus
from coalition.programs.rewards import create_reward


async def reward(shops: Any, shop: Any = None, cost: int = 100, **extra: Any) -> Any:
    return await create_reward(shops.ledger.db, merchant_id=(shop or shops.b).id, name="Free coffee",
                               points_cost=cost, idempotency_key=shops.key("reward"), now=shops.now, **extra)


async def claim(shops: Any, member: Any, rw: Any, *, by_member: bool = False, key: str | None = None,
                shop: Any = None, proof: str | None = None) -> Any:
    who = {"member_id": member.id} if by_member else {"merchant_id": (shop or shops.b).id}
    return await vouchers.claim_reward(shops.ledger, reward_id=rw.id, loyalty_id=member.loyalty_id,
                                       idempotency_key=key or shops.key("claim"), now=shops.now,
                                       member_proof=proof, **who)


async def outcome(call: Any) -> str:
    try:
        await call()
    except DomainError as exc:
        return exc.code
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return "OK"


async def test_create_reward_is_idempotent(shops: Any) -> None:
    first = await create_reward(shops.ledger.db, merchant_id=shops.b.id, name="Tote bag", points_cost=300, stock=5,
                                idempotency_key="r1", now=shops.now)
    again = await create_reward(shops.ledger.db, merchant_id=shops.b.id, name="Tote bag", points_cost=300, stock=5,
                                idempotency_key="r1", now=shops.now)
    assert again.id == first.id and (first.stock_left, first.points_cost) == (5, 300)
    with pytest.raises(DomainError) as info:
        await create_reward(shops.ledger.db, merchant_id=shops.b.id, name="Tote bag", points_cost=301,
                            idempotency_key="r1", now=shops.now)
    assert info.value.code == "IDEMPOTENCY_KEY_CONFLICT"
    # another merchant's key space is its own
    other = await create_reward(shops.ledger.db, merchant_id=shops.a.id, name="Tote bag", points_cost=300,
                                idempotency_key="r1", now=shops.now)
    assert other.id != first.id


@pytest.mark.parametrize(("fields", "code"), [
    ({"points_cost": 0}, "INVALID_POINTS"),
    ({"points_cost": -5}, "INVALID_POINTS"),
    ({"points_cost": 2**31}, "INVALID_POINTS"),
    ({"name": ""}, "INVALID_NAME"),
    ({"name": "x" * 101}, "INVALID_NAME"),
    ({"stock": 0}, "INVALID_STOCK"),
    ({"stock": -1}, "INVALID_STOCK"),
    ({"stock": 10**12}, "INVALID_STOCK"),
    ({"voucher_valid_days": 0}, "INVALID_VALIDITY"),
    ({"voucher_valid_days": 10**6}, "INVALID_VALIDITY"),
    ({"valid_until": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}, "INVALID_VALIDITY"),
    ({"idempotency_key": ""}, "INVALID_IDEMPOTENCY_KEY"),
])
async def test_bad_reward_input_writes_nothing(shops: Any, tables: Any, fields: dict[str, Any], code: str) -> None:
    values = {"name": "Coffee", "points_cost": 100, "idempotency_key": "k"} | fields
    error = await tables.unchanged(code, lambda: create_reward(shops.ledger.db, merchant_id=shops.b.id,
                                                               now=shops.now, **values))
    if code == "INVALID_NAME":
        assert error.field == "name"


async def test_claim_at_the_till_redeems_like_a_redemption(shops: Any, db: Any) -> None:
    # given points issued by A and a reward of B's
    member = await shops.member()
    await shops.earn(member, 150, shops.a)
    rw = await reward(shops, shops.b, cost=100, stock=3)
    # when B claims it for the member at the till
    result = await claim(shops, member, rw)
    # then a voucher with a short code, the points taken by a REDEEM at B attributed to A's lot
    v = result.voucher
    assert v.status == VoucherStatus.ISSUED and len(v.code) == 10 and v.points == 100
    assert result.member.balance == 50
    assert v.expires_at == shops.now + dt.timedelta(days=30)
    async with db.read() as conn:
        entry = (await conn.execute(select(Entry).where(Entry.id == v.redeem_entry_id))).one()
        allocations = list(await conn.execute(select(Allocation.issuer_merchant_id, Allocation.merchant_id,
                                                     Allocation.kind, Allocation.points)
                                              .where(Allocation.entry_id == entry.id)))
        stock = (await conn.execute(select(Reward.stock_left).where(Reward.id == rw.id))).scalar_one()
    assert (entry.kind, entry.merchant_id, entry.points) == (EntryKind.REDEEM, shops.b.id, -100)
    assert [tuple(a) for a in allocations] == [(shops.a.id, shops.b.id, AllocationKind.REDEEM, 100)]
    assert stock == 2


async def test_a_retried_claim_gives_the_same_voucher(shops: Any, tables: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 300)
    rw = await reward(shops, cost=100)
    first = await claim(shops, member, rw, key="same")
    again = await claim(shops, member, rw, key="same")
    assert again.voucher.id == first.voucher.id and again.replayed
    assert await tables.balance(member.id) == 200
    other = await reward(shops, cost=50)
    await tables.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: claim(shops, member, other, key="same"))


async def test_the_member_claims_from_the_wallet(shops: Any, tables: Any) -> None:
    member = await shops.member()
    someone = await shops.member()
    await shops.earn(member, 120)
    await shops.earn(someone, 120)
    rw = await reward(shops, cost=100)
    result = await claim(shops, member, rw, by_member=True)
    assert result.voucher.member_id == member.id and result.member.balance == 20
    # a member claims only for itself
    await tables.unchanged("MEMBER_NOT_FOUND", lambda: vouchers.claim_reward(
        shops.ledger, reward_id=rw.id, loyalty_id=someone.loyalty_id, member_id=member.id,
        idempotency_key="x", now=shops.now))


async def test_claims_beyond_the_allowance_need_the_members_proof(shops: Any, tables: Any, keys: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 1000)
    rw = await reward(shops, cost=500)  # beyond the 200 points a merchant may take without proof
    await tables.unchanged("MEMBER_PROOF_REQUIRED", lambda: claim(shops, member, rw, key="no-proof"))
    # the refusal stays under the key
    await tables.unchanged("MEMBER_PROOF_REQUIRED", lambda: claim(shops, member, rw, key="no-proof"))
    await tables.unchanged("INVALID_MEMBER_PROOF", lambda: claim(shops, member, rw, proof="00000000"))
    code = presence_code(keys, member.loyalty_id, shops.now)
    result = await claim(shops, member, rw, proof=code)
    assert result.member.balance == 500
    # from the wallet the member needs no code
    assert (await claim(shops, member, rw, by_member=True)).member.balance == 0


async def test_bad_claims_write_nothing(shops: Any, tables: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 100)
    rw = await reward(shops, shops.b, cost=100, stock=1)
    expensive = await reward(shops, shops.b, cost=101)
    ending = await reward(shops, shops.b, cost=10, valid_until=shops.now + dt.timedelta(hours=1))
    later = await reward(shops, shops.b, cost=10, valid_from=shops.now + dt.timedelta(days=1))
    await tables.unchanged("INSUFFICIENT_POINTS", lambda: claim(shops, member, expensive))
    await tables.unchanged("REWARD_NOT_FOUND", lambda: claim(shops, member, rw, shop=shops.a))  # A's till
    await tables.unchanged("REWARD_INACTIVE", lambda: claim(shops, member, later))
    await tables.unchanged("INVALID_LOYALTY_ID", lambda: vouchers.claim_reward(
        shops.ledger, reward_id=rw.id, loyalty_id="nope", merchant_id=shops.b.id, idempotency_key="x",
        now=shops.now))
    await tables.unchanged("REWARD_NOT_FOUND", lambda: vouchers.claim_reward(
        shops.ledger, reward_id=10**12, loyalty_id=member.loyalty_id, merchant_id=shops.b.id,
        idempotency_key="x", now=shops.now))
    shops.clock.advance(hours=2)
    await tables.unchanged("REWARD_INACTIVE", lambda: claim(shops, member, ending))
    await claim(shops, member, rw)
    other = await shops.member()
    await shops.earn(other, 100)
    await tables.unchanged("OUT_OF_STOCK", lambda: claim(shops, other, rw))


async def test_only_the_rewards_merchant_uses_a_voucher_once(shops: Any, tables: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 100)
    rw = await reward(shops, shops.b, cost=100)
    v = (await claim(shops, member, rw)).voucher
    shown = vouchers.display_code(v.code).lower()
    await tables.unchanged("VOUCHER_NOT_FOUND", lambda: vouchers.use_voucher(
        shops.ledger, merchant_id=shops.a.id, code=shown, idempotency_key="u1", now=shops.now))
    await tables.unchanged("INVALID_VOUCHER_CODE", lambda: vouchers.use_voucher(
        shops.ledger, merchant_id=shops.b.id, code="short", idempotency_key="u1", now=shops.now))
    used = await vouchers.use_voucher(shops.ledger, merchant_id=shops.b.id, code=shown, idempotency_key="u1",
                                      now=shops.now)
    assert used.voucher.status == VoucherStatus.USED
    again = await vouchers.use_voucher(shops.ledger, merchant_id=shops.b.id, code=shown, idempotency_key="u1",
                                       now=shops.now)
    assert again.voucher.id == v.id
    await tables.unchanged("VOUCHER_ALREADY_USED", lambda: vouchers.use_voucher(
        shops.ledger, merchant_id=shops.b.id, code=v.code, idempotency_key="u2", now=shops.now))
    # used vouchers never expire nor refund
    shops.clock.advance(days=31)
    assert await vouchers.expire_vouchers(shops.ledger, now=shops.now) == 0
    assert await tables.balance(member.id) == 0


async def test_an_unused_voucher_expires_and_gives_the_points_back(shops: Any, tables: Any, db: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 100, shops.a)
    rw = await reward(shops, shops.b, cost=100, stock=1, voucher_valid_days=7)
    v = (await claim(shops, member, rw)).voucher
    shops.clock.advance(days=6)
    assert await vouchers.expire_vouchers(shops.ledger, now=shops.now) == 0
    shops.clock.advance(days=1)
    assert await vouchers.expire_vouchers(shops.ledger, now=shops.now) == 1
    assert await vouchers.expire_vouchers(shops.ledger, now=shops.now) == 0  # once
    assert await tables.balance(member.id) == 100
    async with db.read() as conn:
        row = (await conn.execute(select(Voucher).where(Voucher.id == v.id))).one()
        reversal = (await conn.execute(select(Entry).where(Entry.id == row.reversal_entry_id))).one()
        stock = (await conn.execute(select(Reward.stock_left).where(Reward.id == rw.id))).scalar_one()
    assert row.status == VoucherStatus.EXPIRED and reversal.reverses_id == v.redeem_entry_id
    assert stock == 1  # the item goes back
    await tables.unchanged("VOUCHER_EXPIRED", lambda: vouchers.use_voucher(
        shops.ledger, merchant_id=shops.b.id, code=v.code, idempotency_key="late", now=shops.now))


async def test_expiry_without_refund_when_the_policy_says_so(shops: Any, tables: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 100)
    rw = await reward(shops, cost=100, voucher_valid_days=1)
    await claim(shops, member, rw)
    shops.clock.advance(days=2)
    assert await vouchers.expire_vouchers(shops.ledger, now=shops.now, refund=False) == 1
    assert await tables.balance(member.id) == 0


async def test_100_concurrent_claims_of_the_last_items_never_oversell(shops: Any, db: Any) -> None:
    # given 20 members with points for 5 claims each, and 7 items left
    members = [await shops.member() for _ in range(20)]
    for member in members:
        await shops.earn(member, 50)
    rw = await reward(shops, shops.b, cost=10, stock=7)
    # when 100 claims arrive at once
    outcomes = await asyncio.gather(*(outcome(lambda i=i: claim(shops, members[i % 20], rw, key=f"c{i}"))
                                      for i in range(100)))
    # then exactly 7 vouchers, the rest OUT_OF_STOCK, and 70 points taken
    assert Counter(outcomes) == {"OK": 7, "OUT_OF_STOCK": 93}
    async with db.read() as conn:
        issued = list((await conn.execute(select(Voucher.id).where(Voucher.reward_id == rw.id))).scalars())
        stock = (await conn.execute(select(Reward.stock_left).where(Reward.id == rw.id))).scalar_one()
        redeemed = list((await conn.execute(select(Entry.points).where(Entry.kind == EntryKind.REDEEM))).scalars())
    assert len(issued) == 7 and stock == 0 and sum(redeemed) == -70


async def test_a_member_cannot_claim_twice_with_one_balance(shops: Any, tables: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 100)
    rw = await reward(shops, cost=100)
    outcomes = await asyncio.gather(*(outcome(lambda i=i: claim(shops, member, rw, key=f"c{i}",
                                                                by_member=i % 2 == 0)) for i in range(20)))
    assert Counter(outcomes) == {"OK": 1, "INSUFFICIENT_POINTS": 19}
    assert await tables.balance(member.id) == 0


async def test_concurrent_retries_of_one_claim_make_one_voucher(shops: Any, tables: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 100)
    rw = await reward(shops, cost=10, stock=50)
    results = await asyncio.gather(*(claim(shops, member, rw, key="same") for _ in range(20)))
    assert len({r.voucher.id for r in results}) == 1
    assert await tables.balance(member.id) == 90


async def test_a_refund_of_the_claim_at_the_till_cancels_the_voucher(shops: Any, tables: Any) -> None:
    from coalition.programs.hooks import after_reversal

    member = await shops.member()
    await shops.earn(member, 100)
    rw = await reward(shops, cost=100, stock=1)
    v = (await claim(shops, member, rw)).voucher
    reversed_ = await shops.ledger.reverse(merchant_id=shops.b.id, transaction_id=v.redeem_entry_id,
                                           idempotency_key="refund")
    await after_reversal(shops.ledger, reversed_)
    assert await tables.balance(member.id) == 100
    await tables.unchanged("VOUCHER_CANCELLED", lambda: vouchers.use_voucher(
        shops.ledger, merchant_id=shops.b.id, code=v.code, idempotency_key="u", now=shops.now))
    shops.clock.advance(days=40)
    assert await vouchers.expire_vouchers(shops.ledger, now=shops.now) == 0


async def test_a_retry_of_a_created_reward_replays_after_the_merchant_is_suspended_or_its_end_passed(
        shops: Any, tables: Any) -> None:
    from coalition.partners.models import MerchantStatus
    from coalition.partners.service import set_merchant_status

    until = shops.now + dt.timedelta(days=1)

    def create(key: str = "r1", points: int = 300) -> Any:
        return create_reward(shops.ledger.db, merchant_id=shops.b.id, name="Tote bag", points_cost=points,
                             valid_until=until, idempotency_key=key, now=shops.now)

    first = await create()
    await set_merchant_status(shops.ledger.db, shops.b.id, MerchantStatus.SUSPENDED)
    # the precedence of ledger/idempotency.py: replay, conflict, then suspended
    assert (await create()).id == first.id
    await tables.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: create(points=301))
    await tables.unchanged("MERCHANT_SUSPENDED", lambda: create(key="r2"))
    await set_merchant_status(shops.ledger.db, shops.b.id, MerchantStatus.ACTIVE)
    # a retry after validUntil passed is still the same request: it replays; a new one is refused
    shops.clock.advance(days=2)
    assert (await create()).id == first.id
    await tables.unchanged("INVALID_VALIDITY", lambda: create(key="r3"))
