"""Two-phase redemptions: authorize, then capture (full or partial), void, or let it expire."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from test_ledger_trust import allow

from coalition.ledger.models import AllocationKind, EntryKind, HoldStatus


async def test_authorize_reserves_points_from_the_lots(net: Any, probe: Any, clock: Any) -> None:
    # given 60 points from A and 40 from C
    a = await net.earn(60, net.a)
    c = await net.earn(40, net.c)
    # when B authorizes 70 for 10 minutes
    result = await net.authorize(70, net.b, expires_in_s=600)
    # then the points leave the balance and the lots, FIFO, and sit under the hold
    assert result.entry.kind == EntryKind.HOLD
    assert result.entry.points == -70
    assert (result.member.balance, result.member.held) == (30, 70)
    hold = result.hold
    assert (hold.id, hold.points, hold.status, hold.merchant_id) == (result.entry.id, 70, HoldStatus.AUTHORIZED,
                                                                     net.b.id)
    stored = await probe.hold(hold.id)
    assert stored.expires_at.replace(tzinfo=None) == (clock() + dt.timedelta(seconds=600)).replace(tzinfo=None)
    assert [(x.kind, x.hold_id, x.issuer_merchant_id, x.points) for x in await probe.allocations(hold.id)] == [
        (AllocationKind.HOLD, hold.id, net.a.id, 60), (AllocationKind.HOLD, hold.id, net.c.id, 10)]
    assert (await probe.lot_for(a.entry.id)).remaining == 0
    assert (await probe.lot_for(c.entry.id)).remaining == 30
    assert await probe.postings(hold.id) == {("MEMBER", net.member_id): -70, ("HELD", net.member_id): 70}


async def test_authorize_uses_the_default_expiry(net: Any, probe: Any, clock: Any) -> None:
    await net.earn(10)
    result = await net.authorize(5)
    stored = await probe.hold(result.hold.id)
    expected = clock() + dt.timedelta(seconds=net.settings.default_hold_expiry_s)
    assert stored.expires_at.replace(tzinfo=None) == expected.replace(tzinfo=None)


async def test_full_capture_honors_every_held_point(net: Any, probe: Any) -> None:
    await net.earn(60, net.a)
    await net.earn(40, net.c)
    hold = (await net.authorize(70, net.b)).hold
    # when the hold is captured in full
    result = await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap")
    # then B honors 70 points attributed to their issuers, and nothing comes back
    assert result.entry.kind == EntryKind.CAPTURE
    assert result.entry.points == 0
    assert (result.hold.status, result.hold.captured_points) == (HoldStatus.CAPTURED, 70)
    assert (result.member.balance, result.member.held) == (30, 0)
    assert [(x.kind, x.issuer_merchant_id, x.merchant_id, x.points) for x in
            await probe.allocations(result.entry.id)] == [
        (AllocationKind.CAPTURE, net.a.id, net.b.id, 60), (AllocationKind.CAPTURE, net.c.id, net.b.id, 10)]
    assert await probe.postings(result.entry.id) == {("HELD", net.member_id): -70, ("HONORED", net.b.id): 70}
    assert sum(lot.remaining for lot in await probe.lots(net.member_id)) == 30


async def test_partial_capture_releases_the_rest_to_its_lots(net: Any, probe: Any) -> None:
    # given 70 points held: 60 from A's lot, 10 from C's
    a = await net.earn(60, net.a)
    c = await net.earn(40, net.c)
    hold = (await net.authorize(70, net.b)).hold
    # when only 65 are captured
    result = await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap", points=65)
    # then the first 65 held points are honored and 5 go back to C's lot
    assert result.entry.points == 5
    assert (result.hold.status, result.hold.captured_points) == (HoldStatus.CAPTURED, 65)
    assert (result.member.balance, result.member.held) == (35, 0)
    allocations = [(x.kind, x.issuer_merchant_id, x.points) for x in await probe.allocations(result.entry.id)]
    assert sorted(allocations) == sorted([
        (AllocationKind.CAPTURE, net.a.id, 60), (AllocationKind.CAPTURE, net.c.id, 5),
        (AllocationKind.RELEASE, net.c.id, 5)])
    assert (await probe.lot_for(a.entry.id)).remaining == 0
    assert (await probe.lot_for(c.entry.id)).remaining == 35
    assert await probe.postings(result.entry.id) == {
        ("HELD", net.member_id): -70, ("HONORED", net.b.id): 65, ("MEMBER", net.member_id): 5}


async def test_void_returns_every_point_to_the_lot_it_came_from(net: Any, probe: Any) -> None:
    a = await net.earn(60, net.a)
    c = await net.earn(40, net.c)
    hold = (await net.authorize(70, net.b)).hold
    result = await net.ledger.void(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="void")
    assert result.entry.kind == EntryKind.VOID
    assert result.entry.points == 70
    assert (result.hold.status, result.hold.captured_points) == (HoldStatus.VOIDED, None)
    assert (result.member.balance, result.member.held) == (100, 0)
    assert sorted((x.kind, x.issuer_merchant_id, x.points) for x in await probe.allocations(result.entry.id)) == \
        sorted([(AllocationKind.RELEASE, net.a.id, 60), (AllocationKind.RELEASE, net.c.id, 10)])
    assert (await probe.lot_for(a.entry.id)).remaining == 60
    assert (await probe.lot_for(c.entry.id)).remaining == 40


async def test_capture_beyond_the_hold_is_refused(net: Any, probe: Any) -> None:
    await net.earn(100)
    hold = (await net.authorize(50)).hold
    await probe.unchanged("CAPTURE_EXCEEDS_HOLD", lambda: net.ledger.capture(
        merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap", points=51), field="points")
    # and the hold can still be captured within its amount
    assert (await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap2",
                                     points=50)).hold.status == HoldStatus.CAPTURED


@pytest.mark.parametrize("points", [0, -1, True])
async def test_capture_of_invalid_points_is_refused(net: Any, probe: Any, points: Any) -> None:
    await net.earn(100)
    hold = (await net.authorize(50)).hold
    await probe.unchanged("INVALID_POINTS", lambda: net.ledger.capture(
        merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap", points=points))


@pytest.mark.parametrize("first", ["void", "capture"])
@pytest.mark.parametrize("second", ["void", "capture"])
async def test_a_closed_hold_cannot_be_closed_again(net: Any, probe: Any, first: str, second: str) -> None:
    await net.earn(100)
    hold = (await net.authorize(50)).hold
    await getattr(net.ledger, first)(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="first")
    await probe.unchanged("HOLD_ALREADY_CLOSED", lambda: getattr(net.ledger, second)(
        merchant_id=net.b.id, hold_id=hold.id, idempotency_key="second"), field="holdId")


async def test_unknown_hold_is_not_found(net: Any, probe: Any) -> None:
    await net.earn(100)
    hold = (await net.authorize(50)).hold
    await probe.unchanged("HOLD_NOT_FOUND", lambda: net.ledger.capture(
        merchant_id=net.b.id, hold_id=hold.id + 1000, idempotency_key="cap"), field="holdId")
    await probe.unchanged("HOLD_NOT_FOUND", lambda: net.ledger.void(
        merchant_id=net.b.id, hold_id=hold.id + 1000, idempotency_key="void"), field="holdId")


async def test_another_merchants_hold_is_not_found(net: Any, probe: Any) -> None:
    # given B's hold
    earned = await net.earn(100)
    hold = (await net.authorize(50, net.b)).hold
    # then neither C nor the issuer A can close it, nor use an earn's id as a hold
    for merchant in (net.c, net.a):
        await probe.unchanged("HOLD_NOT_FOUND", lambda m=merchant: net.ledger.capture(
            merchant_id=m.id, hold_id=hold.id, idempotency_key=f"cap-{m.id}"))
        await probe.unchanged("HOLD_NOT_FOUND", lambda m=merchant: net.ledger.void(
            merchant_id=m.id, hold_id=hold.id, idempotency_key="void"))
    await probe.unchanged("HOLD_NOT_FOUND", lambda: net.ledger.capture(
        merchant_id=net.a.id, hold_id=earned.entry.id, idempotency_key="cap-earn"))


@pytest.mark.parametrize("expires_in_s", [0, -1, True, "max+1"])
async def test_invalid_expiry_is_refused(net: Any, probe: Any, expires_in_s: Any) -> None:
    await net.earn(100)
    if expires_in_s == "max+1":
        expires_in_s = net.settings.max_hold_expiry_s + 1
    await probe.unchanged("INVALID_EXPIRY", lambda: net.ledger.authorize(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5, idempotency_key="h", expires_in_s=expires_in_s),
        field="expiresInSeconds")


async def test_longest_expiry_is_accepted(net: Any) -> None:
    await net.earn(100)
    result = await net.authorize(5, expires_in_s=net.settings.max_hold_expiry_s)
    assert result.hold.status == HoldStatus.AUTHORIZED


async def test_authorize_beyond_the_balance_is_refused(net: Any, probe: Any) -> None:
    await net.earn(40)
    await probe.unchanged("INSUFFICIENT_POINTS", lambda: net.ledger.authorize(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=41, idempotency_key="h"))


@pytest.mark.parametrize("operation", ["capture", "void"])
async def test_an_expired_hold_cannot_be_closed_and_releases_its_points(net: Any, probe: Any, clock: Any,
                                                                       operation: str) -> None:
    # given an authorization of 30 of 100 points for 60 seconds
    await net.earn(100)
    hold = (await net.authorize(30, expires_in_s=60)).hold
    # when the POS comes back after it expired
    clock.advance(seconds=61)
    await probe.error(getattr(net.ledger, operation)(merchant_id=net.b.id, hold_id=hold.id,
                                                     idempotency_key="late"), "HOLD_EXPIRED", field="holdId")
    # then the hold is closed as expired and the points are spendable again
    assert (await probe.hold(hold.id)).status == HoldStatus.EXPIRED
    state = await probe.member(net.member_id)
    assert (state.balance, state.held) == (100, 0)
    assert [e.kind for e in await probe.entries(hold_id=hold.id)] == [EntryKind.VOID]
    assert (await net.redeem(100)).member.balance == 0


async def test_a_hold_is_open_until_the_second_it_expires(net: Any, probe: Any, clock: Any) -> None:
    await net.earn(100)
    hold = (await net.authorize(30, expires_in_s=60)).hold
    clock.advance(seconds=59)
    assert await net.ledger.release_expired_holds() == 0
    result = await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap")
    assert result.hold.status == HoldStatus.CAPTURED


async def test_release_expired_holds_voids_only_expired_ones(net: Any, probe: Any, clock: Any) -> None:
    # given three holds: two short ones (one for another member) and a long one
    await net.earn(100)
    other_id, other_lid = await net.new_member()
    await net.earn(50, loyalty_id=other_lid)
    short = (await net.authorize(10, expires_in_s=60)).hold
    short_other = (await net.authorize(20, expires_in_s=120, loyalty_id=other_lid)).hold
    long = (await net.authorize(30, expires_in_s=3600)).hold
    # when the sweeper runs after the short ones expired
    clock.advance(seconds=121)
    released = await net.ledger.release_expired_holds()
    # then exactly those two are released, each with a VOID entry, and their points are back
    assert released == 2
    assert (await probe.hold(short.id)).status == HoldStatus.EXPIRED
    assert (await probe.hold(short_other.id)).status == HoldStatus.EXPIRED
    assert (await probe.hold(long.id)).status == HoldStatus.AUTHORIZED
    for hold in (short, short_other):
        [void] = await probe.entries(hold_id=hold.id)
        assert (void.kind, void.points, void.merchant_id) == (EntryKind.VOID, hold.points, net.b.id)
    mine, theirs = await probe.member(net.member_id), await probe.member(other_id)
    assert (mine.balance, mine.held) == (70, 30)
    assert (theirs.balance, theirs.held) == (50, 0)
    # and a second run finds nothing left to do
    assert await net.ledger.release_expired_holds() == 0
    # and the long hold can still be captured
    assert (await net.ledger.capture(merchant_id=net.b.id, hold_id=long.id,
                                     idempotency_key="c")).hold.status == HoldStatus.CAPTURED


async def test_release_expired_holds_respects_the_limit(net: Any, clock: Any) -> None:
    await net.earn(100)
    for _ in range(3):
        await net.authorize(5, expires_in_s=60)
    clock.advance(seconds=60)
    assert await net.ledger.release_expired_holds(limit=2) == 2
    assert await net.ledger.release_expired_holds(limit=2) == 1


async def test_released_points_of_a_suspended_merchants_hold_still_come_back(net: Any, probe: Any, db: Any,
                                                                             clock: Any) -> None:
    from coalition.partners.models import MerchantStatus
    from coalition.partners.service import set_merchant_status

    await net.earn(100)
    await net.authorize(40, expires_in_s=60)
    await set_merchant_status(db, net.b.id, MerchantStatus.SUSPENDED)
    clock.advance(seconds=60)
    assert await net.ledger.release_expired_holds() == 1
    assert (await probe.member(net.member_id)).balance == 100


async def test_held_points_cannot_be_spent_twice(net: Any, probe: Any) -> None:
    # given 50 points, 40 of them held by B
    await net.earn(50)
    hold = (await net.authorize(40, net.b)).hold
    # then another hold or redemption can use only the 10 free points
    await probe.unchanged("INSUFFICIENT_POINTS", lambda: net.ledger.authorize(
        merchant_id=net.c.id, loyalty_id=net.loyalty_id, points=11, idempotency_key="h2"))
    await probe.unchanged("INSUFFICIENT_POINTS", lambda: net.ledger.redeem(
        merchant_id=net.c.id, loyalty_id=net.loyalty_id, points=11, idempotency_key="r2"))
    await net.redeem(10, net.c)
    # and capturing the hold twice honors the points once
    await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap")
    await probe.unchanged("HOLD_ALREADY_CLOSED", lambda: net.ledger.capture(
        merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap-again"))
    state = await probe.member(net.member_id)
    assert (state.balance, state.held) == (0, 0)


async def test_capture_retry_is_a_replay(net: Any, probe: Any) -> None:
    await net.earn(100)
    hold = (await net.authorize(50)).hold
    first = await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap", points=20)
    before = await probe.snapshot()
    again = await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap", points=20)
    assert (again.entry.id, again.replayed) == (first.entry.id, True)
    assert again.hold is not None and again.hold.captured_points == 20
    assert await probe.snapshot() == before
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: net.ledger.capture(
        merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap", points=21))


async def test_authorize_retry_is_a_replay(net: Any, probe: Any) -> None:
    await net.earn(100)
    first = await net.ledger.authorize(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=50,
                                       idempotency_key="h", expires_in_s=60)
    before = await probe.snapshot()
    again = await net.ledger.authorize(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=50,
                                       idempotency_key="h", expires_in_s=60)
    assert (again.entry.id, again.replayed) == (first.entry.id, True)
    assert again.hold is not None and again.hold.id == first.hold.id
    assert await probe.snapshot() == before
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: net.ledger.authorize(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=50, idempotency_key="h", expires_in_s=61))


async def test_racing_capture_and_void_close_the_hold_once(net: Any, probe: Any) -> None:
    """Under a race, the loser is told the hold is closed, not that it expired."""
    await net.earn(400)
    net.ledger.allowance = allow(400)
    holds = [(await net.authorize(20, expires_in_s=3600)).hold for _ in range(12)]

    async def attempt(operation: str, hold_id: int) -> str:
        try:
            await getattr(net.ledger, operation)(merchant_id=net.b.id, hold_id=hold_id,
                                                 idempotency_key=f"{operation}-{hold_id}")
        except Exception as exc:  # the code is what we compare
            return getattr(exc, "code", repr(exc))
        return "OK"

    outcomes = await asyncio.gather(*[attempt(op, h.id) for h in holds for op in ("capture", "void")])
    for i, hold in enumerate(holds):
        pair = sorted(outcomes[2 * i: 2 * i + 2])
        assert pair == ["HOLD_ALREADY_CLOSED", "OK"], (hold.id, pair)
    statuses = {(await probe.hold(h.id)).status for h in holds}
    assert statuses <= {HoldStatus.CAPTURED, HoldStatus.VOIDED}
    state = await probe.member(net.member_id)
    assert state.held == 0
