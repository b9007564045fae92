"""Network-issued bonuses, and referral bonuses paid at a referee's first qualifying purchase."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from coalition.ledger.bonuses import referral_keys
from coalition.ledger.models import Entry, EntryKind
from coalition.ledger.service import Ledger


async def _bonuses(db: Any) -> list[Any]:
    async with db.read() as conn:
        return list(await conn.execute(select(Entry).where(Entry.kind == EntryKind.BONUS).order_by(Entry.id)))


async def test_a_bonus_is_issued_by_the_network(net: Any, probe: Any) -> None:
    result = await net.ledger.award_network_bonus(member_id=net.member_id, points=50, idempotency_key="b-1",
                                                  reason="welcome")

    assert result.entry.kind == EntryKind.BONUS and result.entry.merchant_id is None
    assert result.member.balance == 50
    assert await probe.postings(result.entry.id) == {("ISSUED", None): -50, ("MEMBER", net.member_id): 50}
    [lot] = await probe.lots(net.member_id)
    assert lot.issuer_merchant_id is None and lot.remaining == 50


async def test_a_bonus_key_is_used_once(net: Any, probe: Any) -> None:
    first = await net.ledger.award_network_bonus(member_id=net.member_id, points=50, idempotency_key="b-1")
    again = await net.ledger.award_network_bonus(member_id=net.member_id, points=50, idempotency_key="b-1")

    assert again.replayed and again.entry.id == first.entry.id
    assert (await probe.member(net.member_id)).balance == 50
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: net.ledger.award_network_bonus(
        member_id=net.member_id, points=60, idempotency_key="b-1"))


async def test_a_bonus_repays_debt_first(net: Any, probe: Any) -> None:
    earned = await net.earn(100)
    await net.redeem(80)
    await net.ledger.reverse(merchant_id=net.a.id, transaction_id=earned.entry.id, idempotency_key="rev")
    assert (await probe.member(net.member_id)).owed == 80

    result = await net.ledger.award_network_bonus(member_id=net.member_id, points=50, idempotency_key="b")

    assert (result.member.balance, result.member.owed) == (0, 30)
    assert await probe.postings(result.entry.id) == {("ISSUED", None): -50, ("DEBT", net.member_id): 50}


async def test_network_points_are_honored_by_a_merchant(net: Any, probe: Any) -> None:
    await net.ledger.award_network_bonus(member_id=net.member_id, points=50, idempotency_key="b")
    redeemed = await net.redeem(30)

    [allocation] = await probe.allocations(redeemed.entry.id)
    assert allocation.issuer_merchant_id is None and allocation.merchant_id == net.b.id


async def test_a_bonus_for_an_unknown_member_is_refused(net: Any, probe: Any) -> None:
    await probe.unchanged("MEMBER_NOT_FOUND", lambda: net.ledger.award_network_bonus(
        member_id=999_999, points=5, idempotency_key="b"))


async def _referred(net: Any, keys: Any) -> tuple[int, str]:
    from coalition.members.service import enroll_member

    referrer = (await probe_member(net, net.member_id))
    enrolled = await enroll_member(net.ledger.db, keys, merchant_id=net.a.id, idempotency_key="ref-1",
                                   referral_code=referrer)
    return enrolled.member.id, enrolled.member.loyalty_id


async def probe_member(net: Any, member_id: int) -> str:
    from coalition.members.models import Member

    async with net.ledger.db.read() as conn:
        return str((await conn.execute(select(Member.referral_code).where(Member.id == member_id))).scalar_one())


async def test_referral_bonuses_are_paid_once_at_the_first_qualifying_purchase(net: Any, probe: Any,
                                                                              keys: Any) -> None:
    referee_id, referee_lid = await _referred(net, keys)
    unit = 10**net.settings.currency_exponent
    small = await net.ledger.earn(merchant_id=net.c.id, loyalty_id=referee_lid, purchase_amount_minor=5 * unit,
                                  idempotency_key="small")
    assert small.member.balance == 5 and await _bonuses(net.ledger.db) == []

    first = await net.ledger.earn(merchant_id=net.c.id, loyalty_id=referee_lid, purchase_amount_minor=20 * unit,
                                  idempotency_key="first")
    later = await net.ledger.earn(merchant_id=net.c.id, loyalty_id=referee_lid, purchase_amount_minor=20 * unit,
                                  idempotency_key="later")

    bonuses = await _bonuses(net.ledger.db)
    assert [(b.member_id, b.points, b.idempotency_key) for b in bonuses] == [
        (referee_id, net.settings.referral_welcome_points, referral_keys(referee_id)[0]),
        (net.member_id, net.settings.referral_bonus_points, referral_keys(referee_id)[1]),
    ]
    assert first.member.balance == 5 + 20 + net.settings.referral_welcome_points
    assert later.member.balance == first.member.balance + 20
    assert (await probe.member(net.member_id)).balance == net.settings.referral_bonus_points


async def test_two_earns_racing_for_the_first_purchase_pay_the_bonus_once(net: Any, probe: Any, keys: Any) -> None:
    referee_id, referee_lid = await _referred(net, keys)
    unit = 10**net.settings.currency_exponent

    async def buy(key: str, merchant: Any) -> Any:
        return await net.ledger.earn(merchant_id=merchant.id, loyalty_id=referee_lid,
                                     purchase_amount_minor=50 * unit, idempotency_key=key)

    await asyncio.gather(*(buy(f"race-{i}", [net.a, net.c][i % 2]) for i in range(6)))

    bonuses = await _bonuses(net.ledger.db)
    assert sorted(b.member_id for b in bonuses) == sorted([referee_id, net.member_id])
    assert (await probe.member(net.member_id)).balance == net.settings.referral_bonus_points


async def test_without_bonus_settings_no_referral_bonus_is_paid(net: Any, keys: Any, clock: Any) -> None:
    _, referee_lid = await _referred(net, keys)
    ledger = Ledger(net.ledger.db, net.settings.with_overrides(referral_bonus_points=0, referral_welcome_points=0),
                    clock=clock)

    await ledger.earn(merchant_id=net.a.id, loyalty_id=referee_lid, purchase_amount_minor=10_000,
                      idempotency_key="big")

    assert await _bonuses(net.ledger.db) == []
