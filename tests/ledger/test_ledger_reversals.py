"""Reversals (refunds at the till): earn, redemption and capture; debt; what cannot be reversed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from coalition.ledger.models import AllocationKind, Entry, EntryKind
from coalition.partners.models import MerchantStatus
from coalition.partners.service import set_merchant_status


async def reverse(net: Any, entry: Any, key: str = "rev", merchant: Any = None, reason: str | None = "refund") -> Any:
    merchant_id = merchant.id if merchant is not None else entry.merchant_id
    return await net.ledger.reverse(merchant_id=merchant_id, transaction_id=entry.id, idempotency_key=key,
                                    reason=reason)


async def test_reversing_an_unspent_earn_removes_its_lot(net: Any, probe: Any) -> None:
    # given 30 points from C and 50 from A, nothing spent
    await net.earn(30, net.c)
    earned = await net.earn(50, net.a)
    # when A reverses its earn
    result = await reverse(net, earned.entry)
    # then the 50 points are gone, the member owes nothing, and A's issuance is returned
    assert result.entry.kind == EntryKind.REVERSAL
    assert (result.entry.points, result.entry.reverses_id, result.entry.reference) == (-50, earned.entry.id,
                                                                                       "refund")
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed, state.lifetime_points) == (30, 0, 30)
    lot = await probe.lot_for(earned.entry.id)
    assert (lot.remaining, lot.reversed) == (0, True)
    assert [(x.kind, x.lot_id, x.points) for x in await probe.allocations(result.entry.id)] == [
        (AllocationKind.REVERSAL, lot.id, 50)]
    assert await probe.postings(result.entry.id) == {("MEMBER", net.member_id): -50, ("ISSUED", net.a.id): 50}


async def test_reversing_a_partly_spent_earn_leaves_the_member_owing_the_shortfall(net: Any, probe: Any) -> None:
    # given 100 points from A, 70 of them spent at B
    earned = await net.earn(100, net.a)
    await net.redeem(70, net.b)
    # when A refunds the purchase
    result = await reverse(net, earned.entry)
    # then the 30 left are removed and the member owes the 70 spent
    assert result.member.balance == 0
    assert result.member.owed == 70
    assert await probe.postings(result.entry.id) == {
        ("MEMBER", net.member_id): -30, ("DEBT", net.member_id): -70, ("ISSUED", net.a.id): 100}


async def test_a_member_in_debt_cannot_redeem_until_earns_repay_it(net: Any, probe: Any) -> None:
    # given a member owing 70 points (earn 100, spend 70, refund), with 20 points from elsewhere
    earned = await net.earn(100, net.a)
    await net.redeem(70, net.b)
    await reverse(net, earned.entry)
    other = await net.earn(20, net.c)
    # then the 20 points repaid part of the debt instead of landing in a lot
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed) == (0, 50)
    assert await probe.lot_for(other.entry.id) is None
    assert await probe.postings(other.entry.id) == {("ISSUED", net.c.id): -20, ("DEBT", net.member_id): 20}
    # and redemptions and holds are refused while the debt lasts
    await probe.unchanged("MEMBER_OWES_POINTS", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="r"))
    await probe.unchanged("MEMBER_OWES_POINTS", lambda: net.ledger.authorize(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="h"))
    # when a later earn is bigger than the rest of the debt
    last = await net.earn(80, net.c)
    # then it repays the 50 first and only 30 become spendable, in a lot of 30
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed) == (30, 0)
    assert (await probe.lot_for(last.entry.id)).points == 30
    assert (await net.redeem(30, net.b)).member.balance == 0


async def test_debt_is_refused_even_with_a_positive_balance(net: Any, probe: Any) -> None:
    # given a member with 40 spendable points from C and a 10-point debt from A's refund
    a = await net.earn(10, net.a)
    await net.redeem(10, net.b)
    await net.earn(40, net.c)
    await reverse(net, a.entry)
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed) == (40, 10)
    # then redemptions wait for the debt
    await probe.unchanged("MEMBER_OWES_POINTS", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5, idempotency_key="r"))


async def test_reversing_a_redemption_restores_the_original_lots(net: Any, probe: Any) -> None:
    # given 40 points from A and 50 from C, 60 redeemed at B (40 of A's, 20 of C's)
    a = await net.earn(40, net.a)
    c = await net.earn(50, net.c)
    spent = await net.redeem(60, net.b)
    # when B reverses the redemption
    result = await reverse(net, spent.entry)
    # then each lot gets back what was taken from it, with the issuer kept
    assert result.entry.points == 60
    assert result.member.balance == 90
    assert (await probe.lot_for(a.entry.id)).remaining == 40
    assert (await probe.lot_for(c.entry.id)).remaining == 50
    restored = [(x.kind, x.lot_id, x.issuer_merchant_id, x.merchant_id, x.points)
                for x in await probe.allocations(result.entry.id)]
    assert restored == [
        (AllocationKind.RESTORE, (await probe.lot_for(a.entry.id)).id, net.a.id, net.b.id, 40),
        (AllocationKind.RESTORE, (await probe.lot_for(c.entry.id)).id, net.c.id, net.b.id, 20)]
    assert await probe.postings(result.entry.id) == {("HONORED", net.b.id): -60, ("MEMBER", net.member_id): 60}


async def test_reversing_a_redemption_of_refunded_points_repays_the_debt(net: Any, probe: Any) -> None:
    # given: earn 100 at A, redeem 70 at B, A refunds (owed 70)
    earned = await net.earn(100, net.a)
    spent = await net.redeem(70, net.b)
    await reverse(net, earned.entry, key="rev-earn")
    # when B also refunds the redemption
    result = await reverse(net, spent.entry, key="rev-redeem")
    # then the 70 points repay the debt rather than coming back to a refunded lot
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed) == (0, 0)
    assert (await probe.lot_for(earned.entry.id)).remaining == 0
    assert await probe.postings(result.entry.id) == {("HONORED", net.b.id): -70, ("DEBT", net.member_id): 70}


async def test_reversing_a_capture_restores_the_honored_points(net: Any, probe: Any) -> None:
    # given a hold of 50, 30 captured (20 released)
    earned = await net.earn(100, net.a)
    hold = (await net.authorize(50, net.b)).hold
    captured = await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="cap", points=30)
    assert captured.member.balance == 70
    # when B reverses the capture
    result = await reverse(net, captured.entry)
    # then the 30 honored points come back to A's lot
    assert result.entry.points == 30
    assert result.member.balance == 100
    assert (await probe.lot_for(earned.entry.id)).remaining == 100
    assert [(x.kind, x.issuer_merchant_id, x.points) for x in await probe.allocations(result.entry.id)] == [
        (AllocationKind.RESTORE, net.a.id, 30)]
    assert await probe.postings(result.entry.id) == {("HONORED", net.b.id): -30, ("MEMBER", net.member_id): 30}


@pytest.mark.parametrize("kind", ["EARN", "REDEEM", "CAPTURE"])
async def test_a_transaction_is_reversed_once(net: Any, probe: Any, kind: str) -> None:
    await net.earn(100, net.a)
    if kind == "EARN":
        target = (await net.earn(10, net.a)).entry
    elif kind == "REDEEM":
        target = (await net.redeem(10, net.b)).entry
    else:
        hold = (await net.authorize(10, net.b)).hold
        target = (await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="c")).entry
    await reverse(net, target, key="first")
    await probe.unchanged("ALREADY_REVERSED", lambda: reverse(net, target, key="second"), field="transactionId")


async def test_reversal_retry_is_a_replay(net: Any, probe: Any) -> None:
    earned = await net.earn(100, net.a)
    first = await reverse(net, earned.entry, key="rev")
    before = await probe.snapshot()
    again = await reverse(net, earned.entry, key="rev")
    assert (again.entry.id, again.replayed) == (first.entry.id, True)
    assert again.member.balance == 0
    assert await probe.snapshot() == before
    # the same key for another reversal, or another reason, is a conflict
    other = await net.earn(10, net.a)
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: reverse(net, other.entry, key="rev"))
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: reverse(net, earned.entry, key="rev", reason="x"))


@pytest.mark.parametrize("kind", ["HOLD", "VOID", "EXPIRED_VOID", "REVERSAL"])
async def test_holds_voids_and_reversals_are_not_reversible(net: Any, probe: Any, clock: Any, kind: str) -> None:
    earned = await net.earn(100, net.a)
    if kind == "HOLD":
        target = (await net.authorize(10, net.b)).entry
    elif kind == "VOID":
        hold = (await net.authorize(10, net.b)).hold
        target = (await net.ledger.void(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="v")).entry
    elif kind == "EXPIRED_VOID":
        await net.authorize(10, net.b, expires_in_s=60)
        clock.advance(seconds=60)
        assert await net.ledger.release_expired_holds() == 1
        [target] = await probe.entries(kind=EntryKind.VOID)
    else:
        target = (await reverse(net, earned.entry, key="first")).entry
    await probe.unchanged("NOT_REVERSIBLE", lambda: reverse(net, target, key="again"), field="transactionId")


async def test_an_expiry_is_no_merchants_transaction_to_reverse(net: Any, probe: Any, clock: Any) -> None:
    # an EXPIRY entry belongs to the network (merchant_id NULL): to a merchant it does not exist
    await net.earn(100, net.a)
    clock.advance(days=net.settings.points_expiry_days)
    await net.ledger.expire_lots()
    [expiry] = await probe.entries(kind=EntryKind.EXPIRY)
    for merchant in (net.a, net.b):
        await probe.unchanged("TRANSACTION_NOT_FOUND", lambda m=merchant: net.ledger.reverse(
            merchant_id=m.id, transaction_id=expiry.id, idempotency_key="rev"))


async def test_another_merchants_transaction_is_not_found(net: Any, probe: Any) -> None:
    earned = await net.earn(100, net.a)
    spent = await net.redeem(10, net.b)
    await probe.unchanged("TRANSACTION_NOT_FOUND", lambda: reverse(net, earned.entry, merchant=net.b),
                          field="transactionId")
    await probe.unchanged("TRANSACTION_NOT_FOUND", lambda: reverse(net, spent.entry, merchant=net.a))
    await probe.unchanged("TRANSACTION_NOT_FOUND", lambda: net.ledger.reverse(
        merchant_id=net.a.id, transaction_id=spent.entry.id + 1000, idempotency_key="rev-unknown"))


async def test_an_earn_whose_points_are_held_cannot_be_reversed(net: Any, probe: Any) -> None:
    # given an earn of 50, 20 of its points held by B
    earned = await net.earn(50, net.a)
    hold = (await net.authorize(20, net.b)).hold
    # then A cannot reverse it while the hold is open
    await probe.unchanged("POINTS_HELD", lambda: reverse(net, earned.entry), field="transactionId")
    # and once the hold is voided it can
    await net.ledger.void(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="v")
    result = await reverse(net, earned.entry, key="rev-2")
    assert (result.member.balance, result.member.owed) == (0, 0)


async def test_an_earn_whose_held_points_were_captured_reverses_into_debt(net: Any, probe: Any) -> None:
    earned = await net.earn(50, net.a)
    hold = (await net.authorize(20, net.b)).hold
    await net.ledger.capture(merchant_id=net.b.id, hold_id=hold.id, idempotency_key="c", points=15)
    result = await reverse(net, earned.entry)
    assert (result.member.balance, result.member.owed) == (0, 15)


async def test_a_suspended_merchant_cannot_reverse(net: Any, probe: Any, db: Any) -> None:
    earned = await net.earn(50, net.a)
    await set_merchant_status(db, net.a.id, MerchantStatus.SUSPENDED)
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: reverse(net, earned.entry))


async def test_reversing_an_earn_that_repaid_debt_restores_the_debt(net: Any, probe: Any) -> None:
    # given a member owing 30 who then earns 50 at C (30 repay the debt, 20 land in a lot)
    first = await net.earn(30, net.a)
    await net.redeem(30, net.b)
    await reverse(net, first.entry, key="r1")
    repaying = await net.earn(50, net.c)
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed) == (20, 0)
    # when C refunds that purchase
    await reverse(net, repaying.entry, key="r2")
    # then the member owes the 30 again and the 20 are gone
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed, state.lifetime_points) == (0, 30, 0)


async def test_reversing_an_earn_whose_points_expired_creates_no_debt(net: Any, probe: Any, clock: Any) -> None:
    """Expired points were never spent: DESIGN.md makes a member owe only what was spent.

    The earn's points already left the member as breakage; a refund of the purchase must not
    also charge the member for them (nor count them both as expired and as returned).
    """
    # given an earn of 100 whose points all expired unspent
    earned = await net.earn(100, net.a)
    clock.advance(days=net.settings.points_expiry_days)
    assert await net.ledger.expire_lots() == (1, 100)
    # when the merchant refunds the purchase
    await reverse(net, earned.entry)
    # then the member owes nothing and can keep redeeming new points
    state = await probe.member(net.member_id)
    assert (state.balance, state.owed) == (0, 0)
    await net.earn(10, net.c)
    assert (await net.redeem(10, net.b)).member.balance == 0


@pytest.mark.parametrize("reason", ["r" * 501, "bad\x00reason"])
async def test_invalid_reason_is_refused(net: Any, probe: Any, reason: str) -> None:
    earned = await net.earn(50, net.a)
    await probe.unchanged("INVALID_REASON", lambda: reverse(net, earned.entry, reason=reason), field="reason")


async def test_the_database_refuses_a_second_reversal_of_one_entry(net: Any, db: Any) -> None:
    # given an earn reversed once (the partial unique index covers only entries that reverse one)
    earned = await net.earn(100, net.a)
    first = await reverse(net, earned.entry)
    row = {"kind": EntryKind.REVERSAL.value, "member_id": net.member_id, "merchant_id": net.a.id, "points": 0,
           "reverses_id": earned.entry.id, "idempotency_key": "by-hand", "created_at": first.entry.created_at}
    # when a second reversal of the same entry is written past the ledger's own checks
    with pytest.raises(IntegrityError, match="reverses_id"):
        async with db.transaction() as conn:
            await conn.execute(insert(Entry).values(row))
    # then it is refused, while entries that reverse nothing (reverses_id NULL) never conflict
    async with db.transaction() as conn:
        for key in ("plain-1", "plain-2"):
            await conn.execute(insert(Entry).values({**row, "reverses_id": None, "idempotency_key": key}))
        count = await conn.scalar(select(func.count()).select_from(Entry).where(Entry.reverses_id == earned.entry.id))
    assert count == 1
