"""Earning and redeeming at the till: rates, refusals, FIFO attribution, idempotency."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from coalition.ledger.core import MAX_POINTS
from coalition.ledger.models import AllocationKind, EntryKind
from coalition.ledger.service import Ledger
from coalition.loyalty_id import ALPHABET, new_loyalty_id
from coalition.partners.models import MerchantStatus
from coalition.partners.service import set_merchant_status


def mistyped_check_character(loyalty_id: str) -> str:
    """The same ID with a different (still valid-looking) last character."""
    last = loyalty_id[-1]
    return loyalty_id[:-1] + ALPHABET[(ALPHABET.index(last) + 1) % len(ALPHABET)]


# ---------------------------------------------------------------- earning


@pytest.mark.parametrize(("rate", "amount"), [(1, 1999), (1, 100), (2, 1999), (3, 1999), (7, 15), (1000, 1)])
async def test_earn_issues_points_at_the_merchant_rate_rounded_down(net: Any, probe: Any, make_merchant: Any,
                                                                     clock: Any, rate: int, amount: int) -> None:
    # given a merchant earning `rate` points per currency unit
    merchant = (await make_merchant(f"Rate {rate}", rate)).merchant
    unit = 10**net.settings.currency_exponent
    expected = amount * rate // unit
    expiry_days = net.settings.points_expiry_days

    # when the member makes a purchase there
    result = await net.ledger.earn(merchant_id=merchant.id, loyalty_id=net.loyalty_id,
                                   purchase_amount_minor=amount, idempotency_key="p-1", reference="R-1")

    # then whole points are issued, rounded down, and land in one lot issued by that merchant
    assert result.entry.points == expected
    assert result.entry.kind == EntryKind.EARN
    assert result.entry.amount_minor == amount
    assert result.entry.reference == "R-1"
    assert result.replayed is False
    assert result.member.balance == expected
    state = await probe.member(net.member_id)
    assert (state.balance, state.held, state.owed, state.lifetime_points) == (expected, 0, 0, expected)
    [lot] = await probe.lots(net.member_id)
    assert (lot.entry_id, lot.issuer_merchant_id, lot.points, lot.remaining) == (result.entry.id, merchant.id,
                                                                               expected, expected)
    assert lot.expires_at.replace(tzinfo=None) == (clock() + dt.timedelta(days=expiry_days)).replace(tzinfo=None)
    assert await probe.postings(result.entry.id) == {("ISSUED", merchant.id): -expected,
                                                     ("MEMBER", net.member_id): expected}


async def test_timestamps_read_back_as_timezone_aware_utc(net: Any, probe: Any, clock: Any) -> None:
    """db.UTCDateTime promises aware UTC datetimes on both databases (naive ones break comparisons)."""
    earned = await net.earn(10)
    lot = await probe.lot_for(earned.entry.id)
    [entry] = await probe.entries(id=earned.entry.id)
    assert entry.created_at == clock()
    assert lot.expires_at == clock() + dt.timedelta(days=net.settings.points_expiry_days)
    assert entry.created_at.utcoffset() == dt.timedelta(0)


async def test_earn_of_1999_minor_units_at_rate_1_is_19_points(net: Any) -> None:
    # given a rate-1 merchant in a currency with 2 decimals
    assert net.settings.currency_exponent == 2
    # when 19.99 is spent
    result = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=1999,
                                   idempotency_key="p")
    # then 19 points, never 20
    assert result.entry.points == 19
    assert result.member.balance == 19


async def test_earn_accepts_the_loyalty_id_as_typed_at_a_till(net: Any) -> None:
    # given the loyalty ID in lowercase, without dashes, with spaces
    typed = " ".join(net.loyalty_id.replace("-", "").lower())
    # when the merchant earns with it
    result = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=typed, purchase_amount_minor=500,
                                   idempotency_key="p")
    # then it is the same member
    assert result.entry.member_id == net.member_id


@pytest.mark.parametrize("amount", [1, 50, 99])
async def test_purchase_earning_no_whole_point_is_refused(net: Any, probe: Any, amount: int) -> None:
    await net.earn(10)  # the member already has points: nothing of theirs may change
    await probe.unchanged("PURCHASE_TOO_SMALL", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=amount, idempotency_key="small"),
        field="purchaseAmountMinor")


async def test_a_merchant_earning_zero_points_refuses_every_purchase(net: Any, probe: Any,
                                                                      make_merchant: Any) -> None:
    free = (await make_merchant("No points", 0)).merchant
    await probe.unchanged("PURCHASE_TOO_SMALL", lambda: net.ledger.earn(
        merchant_id=free.id, loyalty_id=net.loyalty_id, purchase_amount_minor=1_000_000, idempotency_key="z"))


@pytest.mark.parametrize("amount", [0, -1, -1999, 2**31, 2**63, True, False, 19.99, "1999", None])
async def test_invalid_purchase_amount_is_refused(net: Any, probe: Any, amount: Any) -> None:
    await probe.unchanged("INVALID_AMOUNT", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=amount, idempotency_key="bad"),
        field="purchaseAmountMinor")


async def test_largest_purchase_amount_is_accepted(net: Any) -> None:
    result = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id,
                                   purchase_amount_minor=MAX_POINTS, idempotency_key="big")
    assert result.entry.points == MAX_POINTS // 10**net.settings.currency_exponent


def bad_loyalty_ids(valid: str) -> list[str]:
    compact = valid.replace("-", "")
    return [
        mistyped_check_character(valid),  # typo in the check character
        valid[:-1],  # too short
        valid + "0",  # too long
        "",
        compact[:5] + "U" + compact[6:],  # U is not in Crockford's alphabet
        compact[:5] + "!" + compact[6:],
        compact[:5] + "*" + compact[6:],
    ]


@pytest.mark.parametrize("case", range(7))
async def test_malformed_loyalty_id_is_refused_before_any_lookup(net: Any, probe: Any, case: int) -> None:
    await net.earn(40)
    raw = bad_loyalty_ids(net.loyalty_id)[case]
    await probe.unchanged("INVALID_LOYALTY_ID", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=raw, purchase_amount_minor=500, idempotency_key="x"), field="loyaltyId")
    await probe.unchanged("INVALID_LOYALTY_ID", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=raw, points=5, idempotency_key="y"), field="loyaltyId")
    await probe.unchanged("INVALID_LOYALTY_ID", lambda: net.ledger.authorize(
        merchant_id=net.b.id, loyalty_id=raw, points=5, idempotency_key="z"), field="loyaltyId")


async def test_unknown_member_is_not_found(net: Any, probe: Any) -> None:
    await net.earn(40)
    unknown = new_loyalty_id()
    assert unknown != net.loyalty_id
    await probe.unchanged("MEMBER_NOT_FOUND", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=unknown, purchase_amount_minor=500, idempotency_key="x"),
        field="loyaltyId")
    await probe.unchanged("MEMBER_NOT_FOUND", lambda: net.ledger.redeem(
        merchant_id=net.a.id, loyalty_id=unknown, points=1, idempotency_key="y"), field="loyaltyId")


async def test_suspended_merchant_cannot_earn_or_redeem(net: Any, probe: Any, db: Any) -> None:
    # given a member with points and a merchant that is then suspended
    await net.earn(40)
    await set_merchant_status(db, net.b.id, MerchantStatus.SUSPENDED)
    # then its writes are refused and change nothing
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.earn(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500, idempotency_key="x"))
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5, idempotency_key="y"))
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.authorize(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5, idempotency_key="z"))
    # and when it is reactivated it works again
    await set_merchant_status(db, net.b.id, MerchantStatus.ACTIVE)
    assert (await net.redeem(5, net.b)).member.balance == 35


async def test_balance_may_reach_but_not_pass_the_limit(net: Any, probe: Any, make_merchant: Any) -> None:
    # given a member a few points below the largest balance
    generous = (await make_merchant("Generous", 1000)).merchant
    big = (MAX_POINTS - 7) // 1000 * 1000  # a multiple of the rate, just under the limit
    first = await net.ledger.earn(merchant_id=generous.id, loyalty_id=net.loyalty_id,
                                  purchase_amount_minor=big // 10, idempotency_key="big")
    assert first.member.balance == big
    gap = MAX_POINTS - big
    # when they earn exactly up to the limit it works
    await net.earn(gap, net.a)
    assert (await probe.member(net.member_id)).balance == MAX_POINTS
    # and one more point is refused, changing nothing
    await probe.unchanged("BALANCE_LIMIT_EXCEEDED", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=100, idempotency_key="over"))


async def test_single_earn_past_the_limit_is_refused(net: Any, probe: Any, make_merchant: Any) -> None:
    generous = (await make_merchant("Generous", 1000)).merchant
    await probe.unchanged("BALANCE_LIMIT_EXCEEDED", lambda: net.ledger.earn(
        merchant_id=generous.id, loyalty_id=net.loyalty_id, purchase_amount_minor=MAX_POINTS,
        idempotency_key="huge"))


@pytest.mark.parametrize("key", ["", "   ", "k" * 129])
async def test_invalid_idempotency_key_is_refused(net: Any, probe: Any, key: str) -> None:
    await net.earn(40)
    await probe.unchanged("INVALID_IDEMPOTENCY_KEY", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500, idempotency_key=key),
        field="idempotencyKey")
    await probe.unchanged("INVALID_IDEMPOTENCY_KEY", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5, idempotency_key=key), field="idempotencyKey")


async def test_idempotency_key_of_128_characters_is_accepted(net: Any) -> None:
    result = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500,
                                   idempotency_key="k" * 128)
    assert result.entry.idempotency_key == "k" * 128


async def test_over_long_reference_is_refused(net: Any, probe: Any) -> None:
    await net.earn(40)
    await probe.unchanged("INVALID_REFERENCE", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500, idempotency_key="x",
        reference="r" * 129), field="reference")
    await probe.unchanged("INVALID_REFERENCE", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5, idempotency_key="y", reference="r" * 129),
        field="reference")
    await probe.unchanged("INVALID_REFERENCE", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5, idempotency_key="y", reference="tab\there"),
        field="reference")
    ok = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500,
                               idempotency_key="z", reference="r" * 128)
    assert ok.entry.reference == "r" * 128


# ---------------------------------------------------------------- redeeming


async def test_redeem_takes_points_and_credits_the_honoring_merchant(net: Any, probe: Any) -> None:
    earned = await net.earn(100, net.a)
    result = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=30,
                                     idempotency_key="r", reference="till 4")
    assert result.entry.kind == EntryKind.REDEEM
    assert result.entry.points == -30
    assert result.member.balance == 70
    assert await probe.postings(result.entry.id) == {("MEMBER", net.member_id): -30, ("HONORED", net.b.id): 30}
    [alloc] = await probe.allocations(result.entry.id)
    assert (alloc.kind, alloc.lot_id, alloc.issuer_merchant_id, alloc.merchant_id, alloc.points) == (
        AllocationKind.REDEEM, (await probe.lot_for(earned.entry.id)).id, net.a.id, net.b.id, 30)
    assert (await probe.lot_for(earned.entry.id)).remaining == 70


async def test_redeem_consumes_lots_soonest_expiry_first_across_issuers(net: Any, probe: Any, db: Any,
                                                                         clock: Any) -> None:
    # given three lots: A's (expires in 365 days), C's a day later (expires in 366 days) and a lot
    # from A created last but expiring soonest (a 30-day promotion, through a second ledger)
    a_lot = await net.earn(40, net.a)
    clock.advance(days=1)
    c_lot = await net.earn(50, net.c)
    promo_ledger = Ledger(db, net.settings.with_overrides(points_expiry_days=30), clock=clock)
    promo = await promo_ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=2000,
                                    idempotency_key="promo")
    assert promo.entry.points == 20
    lots = {lot.entry_id: lot for lot in await probe.lots(net.member_id)}
    assert lots[promo.entry.id].id > lots[c_lot.entry.id].id > lots[a_lot.entry.id].id

    # when 75 points are redeemed at B
    result = await net.redeem(75, net.b)

    # then the promotion lot goes first, then A's, then part of C's, each attributed to its issuer
    allocations = await probe.allocations(result.entry.id)
    assert [(x.lot_id, x.issuer_merchant_id, x.merchant_id, x.points, x.kind) for x in allocations] == [
        (lots[promo.entry.id].id, net.a.id, net.b.id, 20, AllocationKind.REDEEM),
        (lots[a_lot.entry.id].id, net.a.id, net.b.id, 40, AllocationKind.REDEEM),
        (lots[c_lot.entry.id].id, net.c.id, net.b.id, 15, AllocationKind.REDEEM),
    ]
    remaining = {lot.entry_id: lot.remaining for lot in await probe.lots(net.member_id)}
    assert remaining == {promo.entry.id: 0, a_lot.entry.id: 0, c_lot.entry.id: 35}
    assert result.member.balance == 35


async def test_redeeming_the_whole_balance_leaves_zero(net: Any, probe: Any) -> None:
    await net.earn(30, net.a)
    await net.earn(12, net.c)
    result = await net.redeem(42, net.b)
    assert result.member.balance == 0
    assert sum(lot.remaining for lot in await probe.lots(net.member_id)) == 0


@pytest.mark.parametrize(("balance", "asked"), [(0, 1), (10, 11), (100, 1000)])
async def test_redeeming_more_than_the_balance_is_refused(net: Any, probe: Any, balance: int, asked: int) -> None:
    if balance:
        await net.earn(balance)
    error = await probe.unchanged("INSUFFICIENT_POINTS", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=asked, idempotency_key="r"), field="points")
    assert str(balance) in error.message


async def test_held_points_are_not_spendable(net: Any, probe: Any) -> None:
    await net.earn(50)
    await net.authorize(40)
    await probe.unchanged("INSUFFICIENT_POINTS", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=11, idempotency_key="r"))
    assert (await net.redeem(10)).member.balance == 0


@pytest.mark.parametrize("points", [0, -5, 2**31, True, 1.5, "5"])
async def test_invalid_redeem_points_are_refused(net: Any, probe: Any, points: Any) -> None:
    await net.earn(50)
    await probe.unchanged("INVALID_POINTS", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=points, idempotency_key="r"), field="points")


async def test_a_refused_request_keeps_its_key(net: Any, probe: Any) -> None:
    # given a redemption refused for want of points
    await net.earn(5)
    first = await probe.error(net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20,
                                                idempotency_key="r"), "INSUFFICIENT_POINTS")
    # when the member earns more and the till retries with the same key
    await net.earn(20)
    # then the retry gets the same refusal (issue 13, item 8: the same key, the same outcome), and nothing moves
    again = await probe.unchanged("INSUFFICIENT_POINTS", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20, idempotency_key="r"), field="points")
    assert again.message == first.message
    # and a new key is a new request
    result = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20,
                                     idempotency_key="r2")
    assert result.member.balance == 5


# ---------------------------------------------------------------- idempotency


async def test_earn_retry_returns_the_original_transaction(net: Any, probe: Any) -> None:
    first = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=1999,
                                  idempotency_key="e-1", reference="R")
    before = await probe.snapshot()
    again = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id.lower(),
                                  purchase_amount_minor=1999, idempotency_key="e-1", reference="R")
    assert again.replayed is True
    assert again.entry.id == first.entry.id
    assert (again.entry.points, again.entry.kind, again.entry.member_id) == (first.entry.points, EntryKind.EARN,
                                                                           net.member_id)
    assert again.member.balance == first.member.balance
    assert await probe.snapshot() == before


async def test_redeem_retry_returns_the_original_transaction(net: Any, probe: Any) -> None:
    await net.earn(100)
    first = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=30,
                                    idempotency_key="r-1")
    before = await probe.snapshot()
    again = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=30,
                                    idempotency_key="r-1")
    assert again.replayed is True
    assert again.entry.id == first.entry.id
    assert again.entry.points == -30
    assert again.member.balance == 70
    assert await probe.snapshot() == before


async def test_retry_is_answered_even_after_the_merchant_was_suspended(net: Any, db: Any) -> None:
    first = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500,
                                  idempotency_key="e-1")
    await set_merchant_status(db, net.a.id, MerchantStatus.SUSPENDED)
    again = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500,
                                  idempotency_key="e-1")
    assert (again.entry.id, again.replayed) == (first.entry.id, True)


@pytest.mark.parametrize("change", ["amount", "reference", "member", "operation"])
async def test_same_key_with_other_input_is_a_conflict(net: Any, probe: Any, change: str) -> None:
    await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=1999,
                          idempotency_key="k", reference="R")
    _, other_lid = await net.new_member()
    args: dict[str, Any] = {"merchant_id": net.a.id, "loyalty_id": net.loyalty_id, "purchase_amount_minor": 1999,
                            "idempotency_key": "k", "reference": "R"}
    if change == "amount":
        args["purchase_amount_minor"] = 2000
    elif change == "reference":
        args["reference"] = "S"
    elif change == "member":
        args["loyalty_id"] = other_lid

    def call() -> Any:
        if change == "operation":
            return net.ledger.redeem(merchant_id=net.a.id, loyalty_id=net.loyalty_id, points=1,
                                     idempotency_key="k")
        return net.ledger.earn(**args)

    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", call, field="idempotencyKey")


async def test_redeem_key_reused_with_other_points_is_a_conflict(net: Any, probe: Any) -> None:
    await net.earn(100)
    await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=30, idempotency_key="r")
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=31, idempotency_key="r"))


async def test_keys_are_scoped_per_merchant(net: Any, probe: Any) -> None:
    # given the same key used by two merchants for the same input
    at_a = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=1000,
                                 idempotency_key="till-1")
    at_c = await net.ledger.earn(merchant_id=net.c.id, loyalty_id=net.loyalty_id, purchase_amount_minor=1000,
                                 idempotency_key="till-1")
    # then they are two transactions
    assert at_a.entry.id != at_c.entry.id
    assert not at_a.replayed and not at_c.replayed
    assert (await probe.member(net.member_id)).balance == at_a.entry.points + at_c.entry.points
    assert {e.merchant_id for e in await probe.entries(idempotency_key="till-1")} == {net.a.id, net.c.id}
    # and a key one merchant used for an earn is free for a redemption at another
    spent = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5,
                                    idempotency_key="till-1")
    assert spent.replayed is False
