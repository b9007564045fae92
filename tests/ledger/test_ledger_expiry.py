"""Points expiry (breakage): only lots past their date, attributed to their issuers."""

from __future__ import annotations

from typing import Any

from coalition.ledger.models import AllocationKind, EntryKind, HoldStatus


async def test_nothing_expires_before_its_date(net: Any, probe: Any, clock: Any) -> None:
    await net.earn(100)
    clock.advance(days=net.settings.points_expiry_days, seconds=-1)
    before = await probe.snapshot()
    assert await net.ledger.expire_lots() == (0, 0)
    assert await probe.snapshot() == before


async def test_only_lots_past_their_date_expire(net: Any, probe: Any, clock: Any) -> None:
    # given lots from A (day 0), C (day 10) and A again (day 20), 30 points of the first spent
    days = net.settings.points_expiry_days
    first = await net.earn(100, net.a)
    clock.advance(days=10)
    second = await net.earn(40, net.c)
    clock.advance(days=10)
    third = await net.earn(25, net.a)
    await net.redeem(30, net.b)
    # when the clock passes the expiry of the first two lots but not the third
    clock.advance(days=days - 20 + 10)
    members, points = await net.ledger.expire_lots()
    # then the 70 left of A's first lot and C's 40 expire, and the newest lot stays
    assert (members, points) == (1, 70 + 40)
    remaining = {lot.entry_id: lot.remaining for lot in await probe.lots(net.member_id)}
    assert remaining == {first.entry.id: 0, second.entry.id: 0, third.entry.id: 25}
    state = await probe.member(net.member_id)
    assert (state.balance, state.lifetime_points) == (25, 165)
    # with one EXPIRY entry whose postings credit each issuer's breakage
    [expiry] = await probe.entries(kind=EntryKind.EXPIRY)
    assert (expiry.points, expiry.merchant_id, expiry.member_id) == (-110, None, net.member_id)
    assert await probe.postings(expiry.id) == {("MEMBER", net.member_id): -110, ("EXPIRED", net.a.id): 70,
                                               ("EXPIRED", net.c.id): 40}
    allocations = [(x.kind, x.issuer_merchant_id, x.merchant_id, x.points) for x in await probe.allocations(expiry.id)]
    assert sorted(allocations) == sorted([(AllocationKind.EXPIRY, net.a.id, None, 70),
                                          (AllocationKind.EXPIRY, net.c.id, None, 40)])
    # and a second run expires nothing more
    assert await net.ledger.expire_lots() == (0, 0)


async def test_a_lot_expires_exactly_at_its_date(net: Any, clock: Any) -> None:
    await net.earn(100)
    clock.advance(days=net.settings.points_expiry_days)
    assert await net.ledger.expire_lots() == (1, 100)


async def test_expiry_runs_per_member(net: Any, probe: Any, clock: Any) -> None:
    # given two members with old points and one with fresh points
    other_id, other_lid = await net.new_member()
    fresh_id, fresh_lid = await net.new_member()
    await net.earn(10)
    await net.earn(20, net.c, loyalty_id=other_lid)
    clock.advance(days=net.settings.points_expiry_days)
    await net.earn(30, loyalty_id=fresh_lid)
    progress: list[tuple[int, int]] = []
    # when expiry runs
    result = await net.ledger.expire_lots(progress=lambda done, total: progress.append((done, total)))
    # then each old member gets one EXPIRY entry and the fresh one keeps everything
    assert result == (2, 30)
    assert progress == [(1, 2), (2, 2)]
    assert sorted(e.member_id for e in await probe.entries(kind=EntryKind.EXPIRY)) == sorted([net.member_id,
                                                                                           other_id])
    assert [(await probe.member(m)).balance for m in (net.member_id, other_id, fresh_id)] == [0, 0, 30]


async def test_held_points_do_not_expire_while_held(net: Any, probe: Any, clock: Any) -> None:
    # given 100 points, 60 of them held for a week from the day before they expire
    await net.earn(100)
    clock.advance(days=net.settings.points_expiry_days - 1)
    hold = (await net.authorize(60, expires_in_s=net.settings.max_hold_expiry_s)).hold
    clock.advance(days=1)
    # when expiry runs while the hold is open
    assert await net.ledger.expire_lots() == (1, 40)
    # then only the free 40 expire and the hold can still be captured in full
    state = await probe.member(net.member_id)
    assert (state.balance, state.held) == (0, 60)
    captured = await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="c", points=50)
    assert captured.hold.status == HoldStatus.CAPTURED
    # and the 10 released after the date stay spendable until the next run expires them
    assert (await probe.member(net.member_id)).balance == 10
    assert await net.ledger.expire_lots() == (1, 10)
    assert (await probe.member(net.member_id)).balance == 0


async def test_expired_points_cannot_be_redeemed(net: Any, probe: Any, clock: Any) -> None:
    await net.earn(100)
    clock.advance(days=net.settings.points_expiry_days + 1)
    await net.ledger.expire_lots()
    await probe.unchanged("INSUFFICIENT_POINTS", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="r"))


async def test_points_restored_by_a_reversal_after_the_date_expire_next_run(net: Any, probe: Any,
                                                                           clock: Any) -> None:
    # given a redemption of a lot's whole 100 points, reversed after the lot's date
    earned = await net.earn(100)
    spent = await net.redeem(100)
    clock.advance(days=net.settings.points_expiry_days + 1)
    assert await net.ledger.expire_lots() == (0, 0)
    await net.ledger.reverse(merchant_id=net.b.id, transaction_id=spent.entry.id, idempotency_key="rev")
    assert (await probe.lot_for(earned.entry.id)).remaining == 100
    # then the next run expires them
    assert await net.ledger.expire_lots() == (1, 100)
