"""Gift cards: issue, spend, holds, refunds, expiry, wallets, liability; bad input writes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from coalition.crypto import NetworkKeys
from coalition.errors import DomainError
from coalition.giftcards import codes
from coalition.giftcards.models import GiftAccount, GiftEntryKind, GiftHoldStatus, GiftPosting
from coalition.giftcards.service import GiftCards


async def postings(gift: GiftCards, entry_id: int) -> dict[tuple[str, int], int]:
    async with gift.db.read() as conn:
        rows = await conn.execute(select(GiftPosting.account, GiftPosting.account_id, GiftPosting.amount_minor,
                                         GiftPosting.asset, GiftPosting.currency)
                                  .where(GiftPosting.entry_id == entry_id))
        out = {}
        for r in rows:
            assert (r.asset, r.currency) == ("MONEY", "EUR")
            out[(str(r.account), r.account_id)] = r.amount_minor
        return out


async def test_issue_shows_the_code_once_and_stores_only_its_keyed_hash(shops: Any, gprobe: Any, keys: Any) -> None:
    # when the bakery sells a 25.00 card
    sold = await shops.issue(2500)
    # then the code is 19 characters of this network (check character and tag) with 80 random bits
    assert sold.code is not None and len(sold.code.replace("-", "")) == codes.CODE_LENGTH
    compact = codes.parse(keys, sold.code)
    assert codes.RANDOM_LENGTH * 5 >= 64
    card = await gprobe.card(sold.card.id)
    assert (card.balance_minor, card.initial_minor, card.currency, card.issuer_merchant_id) == (2500, 2500, "EUR",
                                                                                                 shops.a.id)
    assert card.last4 == compact[-4:] and card.code_hash == codes.code_hash(keys, compact)
    assert compact not in str(tuple(card)) and sold.code not in str(tuple(card))
    assert card.expires_at is None  # the default policy: never expires
    assert await postings(shops.gift, sold.entry.id) == {("CASH", shops.a.id): -2500, ("CARD", card.id): 2500}
    # and a retry with the key returns the same card, without the code (it is not kept)
    again = await shops.gift.issue(merchant_id=shops.a.id, amount_minor=2500, idempotency_key="issue-1")
    assert again.replayed and again.card.id == sold.card.id and again.code is None


async def test_partial_spends_at_any_partner_until_the_card_is_spent(shops: Any, gprobe: Any) -> None:
    sold = await shops.issue(1000)
    first = await shops.spend(sold.code, 300)
    assert first.card.balance_minor == 700 and first.entry.kind == GiftEntryKind.REDEEM
    assert await postings(shops.gift, first.entry.id) == {("CARD", sold.card.id): -300, ("SPENT", shops.b.id): 300}
    await shops.spend(sold.code, 700, merchant=shops.a)  # at the issuer itself too
    # a spent card refuses any amount, and nothing is written
    await gprobe.unchanged("INSUFFICIENT_FUNDS", lambda: shops.spend(sold.code, 1))
    assert (await gprobe.card(sold.card.id)).balance_minor == 0


@pytest.mark.parametrize(("amount", "code"), [(0, "INVALID_AMOUNT"), (-5, "INVALID_AMOUNT"), (50_001, "INVALID_AMOUNT"),
                                              (True, "INVALID_AMOUNT")])
async def test_bad_amounts_are_refused_and_write_nothing(shops: Any, gprobe: Any, amount: Any, code: str) -> None:
    sold = await shops.issue(1000)
    await gprobe.unchanged(code, lambda: shops.gift.issue(merchant_id=shops.a.id, amount_minor=amount,
                                                          idempotency_key="x"))
    await gprobe.unchanged(code, lambda: shops.spend(sold.code, amount))


async def test_wrong_currency_mistyped_and_foreign_codes_are_refused(shops: Any, gprobe: Any, db: Any,
                                                                     settings: Any) -> None:
    sold = await shops.issue(1000)
    await gprobe.unchanged("INVALID_CURRENCY", lambda: shops.gift.issue(
        merchant_id=shops.a.id, amount_minor=100, idempotency_key="x", currency="USD"))
    await gprobe.unchanged("INVALID_CURRENCY", lambda: shops.gift.redeem(
        merchant_id=shops.b.id, caller_key="m", code=sold.code, amount_minor=100, idempotency_key="y",
        currency="GBP"))
    # one character mistyped: the check character catches it
    compact = sold.code.replace("-", "")
    typo = compact[:5] + ("X" if compact[5] != "X" else "Y") + compact[6:]
    await gprobe.unchanged("INVALID_GIFT_CARD_CODE", lambda: shops.spend(typo, 100))
    # another network's card (another master secret): its tag fails, it looks like no card at all
    other = GiftCards(db, settings, NetworkKeys(b"another network"))
    foreign = codes.new_code(other.keys)
    await gprobe.unchanged("GIFT_CARD_NOT_FOUND", lambda: shops.spend(foreign, 100))
    # a well-formed code of this network that no card has
    unknown = codes.new_code(shops.gift.keys)
    await gprobe.unchanged("GIFT_CARD_NOT_FOUND", lambda: shops.spend(unknown, 100))


async def test_retries_replay_and_another_body_under_the_key_conflicts(shops: Any, gprobe: Any) -> None:
    sold = await shops.issue(1000)
    first = await shops.spend(sold.code, 400, key="till-1")
    again = await shops.spend(sold.code, 400, key="till-1")
    assert again.replayed and again.entry.id == first.entry.id and again.card.balance_minor == 600
    await gprobe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: shops.spend(sold.code, 401, key="till-1"))
    await gprobe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: shops.gift.issue(
        merchant_id=shops.a.id, amount_minor=999, idempotency_key="issue-1"))
    # a refusal is kept under its key: the same retry gets it again even once the card holds enough
    await gprobe.unchanged("INSUFFICIENT_FUNDS", lambda: shops.spend(sold.code, 700, key="till-2"))
    await shops.gift.refund(merchant_id=shops.b.id, entry_id=first.entry.id, idempotency_key="r")
    await gprobe.unchanged("INSUFFICIENT_FUNDS", lambda: shops.spend(sold.code, 700, key="till-2"))


async def test_hold_capture_part_and_release_the_rest(shops: Any, gprobe: Any) -> None:
    sold = await shops.issue(1000)
    held = await shops.gift.authorize(merchant_id=shops.b.id, caller_key="m", code=sold.code, amount_minor=600,
                                      idempotency_key="auth")
    assert held.hold is not None and (held.card.balance_minor, held.card.held_minor) == (400, 600)
    await gprobe.unchanged("INSUFFICIENT_FUNDS", lambda: shops.spend(sold.code, 401))
    # another merchant's capture finds no hold
    await gprobe.unchanged("HOLD_NOT_FOUND", lambda: shops.gift.capture(
        merchant_id=shops.c.id, hold_id=held.hold.id, idempotency_key="cap"))
    await gprobe.unchanged("CAPTURE_EXCEEDS_HOLD", lambda: shops.gift.capture(
        merchant_id=shops.b.id, hold_id=held.hold.id, idempotency_key="cap-too-much", amount_minor=601))
    captured = await shops.gift.capture(merchant_id=shops.b.id, hold_id=held.hold.id, idempotency_key="cap",
                                        amount_minor=450)
    assert (captured.card.balance_minor, captured.card.held_minor) == (550, 0)
    assert captured.hold.status == GiftHoldStatus.CAPTURED and captured.hold.captured_minor == 450
    assert await postings(shops.gift, captured.entry.id) == {
        ("CARD_HELD", sold.card.id): -600, ("SPENT", shops.b.id): 450, ("CARD", sold.card.id): 150}
    await gprobe.unchanged("HOLD_ALREADY_CLOSED", lambda: shops.gift.void(
        merchant_id=shops.b.id, hold_id=held.hold.id, idempotency_key="void"))


async def test_void_and_expired_holds_give_everything_back(shops: Any, gprobe: Any, clock: Any) -> None:
    sold = await shops.issue(1000)
    held = await shops.gift.authorize(merchant_id=shops.b.id, caller_key="m", code=sold.code, amount_minor=300,
                                      idempotency_key="auth-1")
    voided = await shops.gift.void(merchant_id=shops.b.id, hold_id=held.hold.id, idempotency_key="void-1")
    assert (voided.card.balance_minor, voided.card.held_minor) == (1000, 0)
    held = await shops.gift.authorize(merchant_id=shops.b.id, caller_key="m", code=sold.code, amount_minor=300,
                                      idempotency_key="auth-2", expires_in_s=60)
    clock.advance(seconds=61)
    # capturing it is refused, and the refusal releases the money to the card
    with pytest.raises(DomainError) as info:
        await shops.gift.capture(merchant_id=shops.b.id, hold_id=held.hold.id, idempotency_key="cap-2")
    assert info.value.code == "HOLD_EXPIRED"
    card = await gprobe.card(sold.card.id)
    assert (card.balance_minor, card.held_minor) == (1000, 0)
    await gprobe.unchanged("INVALID_EXPIRY", lambda: shops.gift.authorize(
        merchant_id=shops.b.id, caller_key="m", code=sold.code, amount_minor=1, idempotency_key="a3",
        expires_in_s=0))


async def test_refund_gives_a_spend_back_to_the_card_once(shops: Any, gprobe: Any) -> None:
    sold = await shops.issue(1000)
    spent = await shops.spend(sold.code, 400)
    await gprobe.unchanged("TRANSACTION_NOT_FOUND", lambda: shops.gift.refund(
        merchant_id=shops.c.id, entry_id=spent.entry.id, idempotency_key="r"))
    await gprobe.unchanged("NOT_REFUNDABLE", lambda: shops.gift.refund(
        merchant_id=shops.a.id, entry_id=sold.entry.id, idempotency_key="r"))
    refunded = await shops.gift.refund(merchant_id=shops.b.id, entry_id=spent.entry.id, idempotency_key="r",
                                       reason="returned book")
    assert refunded.card.balance_minor == 1000 and refunded.entry.reverses_id == spent.entry.id
    assert await postings(shops.gift, refunded.entry.id) == {("SPENT", shops.b.id): -400, ("CARD", sold.card.id): 400}
    await gprobe.unchanged("ALREADY_REFUNDED", lambda: shops.gift.refund(
        merchant_id=shops.b.id, entry_id=spent.entry.id, idempotency_key="r2"))


async def test_expiry_per_policy_and_breakage_to_the_issuer(db: Any, expiring_settings: Any, keys: Any, clock: Any,
                                                            make_merchant: Any, gprobe: Any) -> None:
    from coalition.ledger.invariants import assert_ledger_consistent

    gift = GiftCards(db, expiring_settings, keys, clock=clock)
    shop = (await make_merchant("Shop")).merchant
    sold = await gift.issue(merchant_id=shop.id, amount_minor=800, idempotency_key="i")
    assert sold.card.expires_at == clock.now + dt.timedelta(days=30)
    await gift.redeem(merchant_id=shop.id, caller_key="m", code=sold.code, amount_minor=300, idempotency_key="s")
    assert [x.outstanding_minor for x in await gift.liabilities()] == [500]
    clock.advance(days=31)
    await gprobe.unchanged("GIFT_CARD_EXPIRED", lambda: gift.redeem(
        merchant_id=shop.id, caller_key="m", code=sold.code, amount_minor=1, idempotency_key="s2"))
    assert await gift.expire_cards() == 1
    assert await gift.expire_cards() == 0
    card = await gprobe.card(sold.card.id)
    assert card.balance_minor == 0 and card.expired_at == clock.now
    assert [x.outstanding_minor for x in await gift.liabilities()] == [0]
    async with db.read() as conn:
        await assert_ledger_consistent(conn)
        breakage = (await conn.execute(select(GiftPosting.amount_minor).where(
            GiftPosting.account == GiftAccount.BREAKAGE, GiftPosting.account_id == shop.id))).scalar_one()
    assert breakage == 500


async def test_never_expires_by_default(shops: Any, clock: Any) -> None:
    sold = await shops.issue(500)
    clock.advance(days=3650)
    assert await shops.gift.expire_cards() == 0
    assert (await shops.spend(sold.code, 500)).card.balance_minor == 0


async def test_liability_per_issuer(shops: Any) -> None:
    one = await shops.issue(1000, shops.a)
    await shops.issue(2000, shops.b)
    await shops.issue(300, shops.b)
    await shops.spend(one.code, 250, shops.c)
    rows = {x.issuer_merchant_id: (x.cards, x.outstanding_minor) for x in await shops.gift.liabilities()}
    assert rows == {shops.a.id: (1, 750), shops.b.id: (2, 2300)}
    own = await shops.gift.liabilities(issuer_merchant_id=shops.b.id)
    assert [(x.issuer_merchant_id, x.outstanding_minor, x.currency) for x in own] == [(shops.b.id, 2300, "EUR")]


async def test_a_member_attaches_a_card_to_the_wallet(shops: Any, make_member: Any, gprobe: Any) -> None:
    sold = await shops.issue(1000)
    one = (await make_member(shops.a.id)).member
    two = (await make_member(shops.a.id)).member
    card = await shops.gift.attach(member_id=one.id, code=sold.code)
    assert card.member_id == one.id
    assert (await shops.gift.attach(member_id=one.id, code=sold.code)).id == card.id  # again: the same
    await gprobe.unchanged("GIFT_CARD_ATTACHED", lambda: shops.gift.attach(member_id=two.id, code=sold.code))
    assert [c.id for c in await shops.gift.member_cards(one.id)] == [card.id]
    assert await shops.gift.member_cards(two.id) == []
    await gprobe.unchanged("GIFT_CARD_NOT_FOUND", lambda: shops.gift.attach(
        member_id=two.id, code=codes.new_code(shops.gift.keys)))


async def test_a_suspended_merchant_cannot_sell_or_take_cards(shops: Any, gprobe: Any, db: Any) -> None:
    from coalition.partners.models import MerchantStatus
    from coalition.partners.service import set_merchant_status

    sold = await shops.issue(1000)
    await set_merchant_status(db, shops.b.id, MerchantStatus.SUSPENDED)
    await gprobe.unchanged("MERCHANT_SUSPENDED", lambda: shops.spend(sold.code, 10))
    await gprobe.unchanged("MERCHANT_SUSPENDED", lambda: shops.issue(10, shops.b))


async def test_a_card_sold_to_a_member_goes_to_the_wallet_and_earns_points_per_policy(
        db: Any, settings: Any, keys: Any, clock: Any, shops: Any, make_member: Any, gprobe: Any) -> None:
    import dataclasses

    from coalition.members.models import Member

    buyer = (await make_member(shops.a.id)).member
    # the default policy: the card goes to the wallet, no points
    plain = await shops.gift.issue(merchant_id=shops.a.id, amount_minor=2000, idempotency_key="p1",
                                   loyalty_id=buyer.loyalty_id)
    assert plain.card.member_id == buyer.id and plain.points_earned == 0
    # a network whose policy lets gift card sales earn: 20.00 at 1 point per unit is 20 points
    earning = GiftCards(db, dataclasses.replace(settings, gift_card_earns_points=True), keys, clock=clock)
    sold = await earning.issue(merchant_id=shops.a.id, amount_minor=2000, idempotency_key="p2",
                               loyalty_id=buyer.loyalty_id)
    assert sold.points_earned == 20 and sold.card.member_id == buyer.id
    again = await earning.issue(merchant_id=shops.a.id, amount_minor=2000, idempotency_key="p2",
                                loyalty_id=buyer.loyalty_id)
    assert again.replayed and again.card.id == sold.card.id and again.points_earned == 20
    async with db.read() as conn:
        balance = (await conn.execute(select(Member.balance).where(Member.id == buyer.id))).scalar_one()
    assert balance == 20  # earned once, whatever the retries
    # an unknown member: refused, nothing sold
    await gprobe.unchanged("INVALID_LOYALTY_ID", lambda: shops.gift.issue(
        merchant_id=shops.a.id, amount_minor=100, idempotency_key="p3", loyalty_id="nope"))
