"""The events beyond the points ledger: ``giftcard.redeemed``, ``voucher.issued`` and ``fraud.alert``.

Each is written to the outbox in the transaction of its change (a write that rolls back leaves
no delivery), once (a retry writes none), and only to the endpoints of the merchant it belongs
to and the admin's. The gift card spend is tested on both of its paths (PostgreSQL's one
statement, ``giftcards/fastpath.py``, and the multi-statement one).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from planted_network import build_planted, forget_cached_insights
from sqlalchemy import func, select

from coalition.db import Database
from coalition.giftcards.models import GiftEntry
from coalition.giftcards.service import GiftCards
from coalition.network.models import InsightRun
from coalition.programs import stamps, vouchers
from coalition.programs.hooks import after_earn
from coalition.programs.reward_models import Voucher
from coalition.programs.rewards import create_reward
from coalition.webhooks.delivery import body_of
from coalition.webhooks.models import WebhookDelivery
from coalition.webhooks.service import create_endpoint

ALLOWED = frozenset({"127.0.0.1"})
GIFT_PATHS = ("fast", "general") if os.environ.get("COALITION_TEST_DATABASE_URL") else ("general",)


async def rows(db: Database, event_type: str) -> list[tuple[int, int | None, int | None, dict[str, Any]]]:
    """(endpoint, merchant, member, data) of the deliveries of ``event_type``, in outbox order."""
    async with db.read() as conn:
        found = await conn.execute(select(WebhookDelivery).where(WebhookDelivery.type == event_type)
                                   .order_by(WebhookDelivery.id))
        return [(r.endpoint_id, r.merchant_id, r.member_id, json.loads(r.data)) for r in found]


async def bodies(db: Database, keys: Any, event_type: str) -> list[tuple[int, bytes, dict[str, Any]]]:
    """(endpoint, body, body's data) of what is POSTed for each delivery of ``event_type``."""
    async with db.read() as conn:
        found = (await conn.execute(select(WebhookDelivery).where(WebhookDelivery.type == event_type)
                                    .order_by(WebhookDelivery.id))).all()
    out = []
    for row in found:
        body = body_of(keys, WebhookDelivery(**dict(row._mapping)))
        assert json.loads(body)["type"] == event_type
        out.append((row.endpoint_id, body, json.loads(body)["data"]))
    return out


async def hook(db: Database, keys: Any, merchant: Any, event_type: str) -> int:
    """An endpoint of ``merchant`` (None: the admin) for ``event_type``; its id."""
    owner = "admin" if merchant is None else merchant.id
    made = await create_endpoint(db, keys, merchant_id=None if merchant is None else merchant.id,
                                 url=f"http://127.0.0.1:9/{owner}", events=[event_type],
                                 idempotency_key=f"{owner}-{event_type}", allowed_hosts=ALLOWED)
    return made.endpoint.id


class Boom(Exception):
    pass


def failing_after_the_outbox(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the next transaction fail right after it wrote its outbox rows (so it rolls them back);
    returns the count of rows each such transaction had written."""
    assert db.hooks is not None
    original, written = db.hooks.before, []

    async def before_then_fail(conn: Any, changes: Any) -> None:
        await original(conn, changes)
        written.append((await conn.execute(select(func.count(WebhookDelivery.id)))).scalar_one())
        raise Boom

    monkeypatch.setattr(db.hooks, "before", before_then_fail)
    return written


# -------------------------------------------------------------------------------- gift cards


@pytest.fixture(params=GIFT_PATHS)
async def gift(request: pytest.FixtureRequest, db: Database, settings: Any, keys: Any, clock: Any,
               outbox: Any) -> GiftCards:
    service = GiftCards(db, settings, keys, clock=clock)
    service.fast_path = request.param == "fast" and not db.is_sqlite
    return service


async def test_a_gift_card_spend_tells_the_merchant_where_it_was_spent_once(
    db: Database, keys: Any, gift: GiftCards, make_merchant: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer, shop, other = [(await make_merchant(name)).merchant for name in ("Issuer", "Shop", "Other")]
    at_shop, at_issuer, at_other, admin = [await hook(db, keys, m, "giftcard.redeemed")
                                           for m in (shop, issuer, other, None)]
    sold = await gift.issue(merchant_id=issuer.id, amount_minor=50_00, idempotency_key="sell")
    assert sold.code is not None
    general = 0
    original = gift._spend_in_tx

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal general
        general += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(gift, "_spend_in_tx", counted)

    spent = await gift.redeem(merchant_id=shop.id, caller_key=f"MERCHANT:{shop.id}", code=sold.code,
                              amount_minor=12_34, idempotency_key="spend", reference="till 4")
    again = await gift.redeem(merchant_id=shop.id, caller_key=f"MERCHANT:{shop.id}", code=sold.code,
                              amount_minor=12_34, idempotency_key="spend", reference="till 4")
    assert again.entry.id == spent.entry.id
    assert general == (1 if gift.fast_path else 2)  # the fast path wrote it (a retry takes the other path)

    expected = {"gift_entry_id": spent.entry.id, "kind": "REDEEM", "card_id": sold.card.id,
                "last4": sold.card.last4, "amount_minor": 12_34, "currency": spent.entry.currency,
                "reference": "till 4", "hold_id": None}
    assert await rows(db, "giftcard.redeemed") == [(at_shop, shop.id, None, expected),
                                                   (admin, shop.id, None, expected)]
    assert not {at_issuer, at_other} & {r[0] for r in await rows(db, "giftcard.redeemed")}
    ids = keys.global_ids
    for _, body, data in await bodies(db, keys, "giftcard.redeemed"):
        assert data == {"giftCardTransaction": {
            "id": ids.encode("GiftCardTransaction", spent.entry.id), "kind": "REDEEM", "amountMinor": 12_34,
            "currency": spent.entry.currency, "reference": "till 4", "hold": None,
            "giftCard": {"id": ids.encode("GiftCard", sold.card.id), "last4": sold.card.last4}},
            "merchant": {"id": ids.encode("Merchant", shop.id)}}
        assert sold.code.encode() not in body and sold.code.replace("-", "").encode() not in body

    # A spend the card cannot pay writes no event.
    with pytest.raises(Exception, match="holds"):
        await gift.redeem(merchant_id=shop.id, caller_key=f"MERCHANT:{shop.id}", code=sold.code,
                          amount_minor=99_00, idempotency_key="too-much")
    assert len(await rows(db, "giftcard.redeemed")) == 2


async def test_concurrent_gift_spends_each_tell_only_their_merchant(
    db: Database, keys: Any, gift: GiftCards, make_merchant: Any,
) -> None:
    issuer, hooked, quiet = [(await make_merchant(name)).merchant for name in ("Issuer", "Hooked", "Quiet")]
    endpoint = await hook(db, keys, hooked, "giftcard.redeemed")
    cards = [await gift.issue(merchant_id=issuer.id, amount_minor=10_00, idempotency_key=f"sell-{i}")
             for i in range(8)]

    async def spend(i: int) -> Any:
        shop = hooked if i % 2 else quiet
        code = cards[i].code
        assert code is not None
        return await gift.redeem(merchant_id=shop.id, caller_key=f"MERCHANT:{shop.id}", code=code,
                                 amount_minor=1_00 + i, idempotency_key=f"spend-{i}")

    results = await asyncio.gather(*(spend(i) for i in range(8)))
    found = await rows(db, "giftcard.redeemed")
    assert sorted(r[3]["gift_entry_id"] for r in found) == sorted(results[i].entry.id for i in range(1, 8, 2))
    assert {(r[0], r[1]) for r in found} == {(endpoint, hooked.id)}


async def test_a_captured_gift_hold_is_the_spend_and_a_rolled_back_spend_tells_nobody(
    db: Database, keys: Any, gift: GiftCards, make_merchant: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer, shop = [(await make_merchant(name)).merchant for name in ("Issuer", "Shop")]
    endpoint = await hook(db, keys, shop, "giftcard.redeemed")
    sold = await gift.issue(merchant_id=issuer.id, amount_minor=50_00, idempotency_key="sell")
    assert sold.code is not None
    caller = f"MERCHANT:{shop.id}"
    held = await gift.authorize(merchant_id=shop.id, caller_key=caller, code=sold.code, amount_minor=20_00,
                                idempotency_key="auth")
    voided = await gift.authorize(merchant_id=shop.id, caller_key=caller, code=sold.code, amount_minor=1_00,
                                  idempotency_key="auth-2")
    assert held.hold is not None and voided.hold is not None
    await gift.void(merchant_id=shop.id, hold_id=voided.hold.id, idempotency_key="void")
    assert await rows(db, "giftcard.redeemed") == []  # an authorization or a void spends nothing
    captured = await gift.capture(merchant_id=shop.id, hold_id=held.hold.id, amount_minor=15_00,
                                  idempotency_key="capture")
    await gift.capture(merchant_id=shop.id, hold_id=held.hold.id, amount_minor=15_00, idempotency_key="capture")
    assert await rows(db, "giftcard.redeemed") == [(endpoint, shop.id, None, {
        "gift_entry_id": captured.entry.id, "kind": "CAPTURE", "card_id": sold.card.id, "last4": sold.card.last4,
        "amount_minor": 15_00, "currency": captured.entry.currency, "reference": None, "hold_id": held.hold.id})]

    # The multi-statement spend writes its event in its transaction: undone with it.
    gift.fast_path = False
    written = failing_after_the_outbox(db, monkeypatch)
    with pytest.raises(Boom):
        await gift.redeem(merchant_id=shop.id, caller_key=caller, code=sold.code, amount_minor=1_00,
                          idempotency_key="undone")
    assert written == [2]  # the row was written, then rolled back with the spend
    assert len(await rows(db, "giftcard.redeemed")) == 1
    async with db.read() as conn:
        assert (await conn.execute(select(GiftEntry.id).where(GiftEntry.idempotency_key == "undone"))).first() is None


# -------------------------------------------------------------------------------- vouchers


async def test_a_claimed_reward_tells_its_merchant_once_without_the_code(
    db: Database, keys: Any, hooked_ledger: Any, clock: Any, make_merchant: Any, make_member: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, other = (await make_merchant("Shop")).merchant, (await make_merchant("Other")).merchant
    mine, theirs = await hook(db, keys, shop, "voucher.issued"), await hook(db, keys, other, "voucher.issued")
    member = (await make_member(shop.id)).member
    await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=500_00,
                             idempotency_key="e")
    reward = await create_reward(db, merchant_id=shop.id, name="Mug", points_cost=100, idempotency_key="r",
                                 now=clock.now)

    claimed = await vouchers.claim_reward(hooked_ledger, reward_id=reward.id, loyalty_id=member.loyalty_id,
                                          merchant_id=shop.id, idempotency_key="c", now=clock.now)
    again = await vouchers.claim_reward(hooked_ledger, reward_id=reward.id, loyalty_id=member.loyalty_id,
                                        merchant_id=shop.id, idempotency_key="c", now=clock.now)
    assert again.replayed and again.voucher.id == claimed.voucher.id

    found = await rows(db, "voucher.issued")
    assert [(r[0], r[1], r[2]) for r in found] == [(mine, shop.id, member.id)]
    data = found[0][3]
    assert (data["voucher_id"], data["reward_id"], data["points"], data["stamp_card_id"]) == (
        claimed.voucher.id, reward.id, 100, None)
    assert theirs not in {r[0] for r in found}
    ((_, body, sent),) = await bodies(db, keys, "voucher.issued")
    ids = keys.global_ids
    assert sent["voucher"]["id"] == ids.encode("Voucher", claimed.voucher.id)
    assert sent["voucher"]["reward"] == {"id": ids.encode("Reward", reward.id)}
    assert sent["member"] == {"id": ids.encode("Member", member.id)}
    assert "code" not in sent["voucher"] and claimed.voucher.code.encode() not in body

    # A claim that rolls back leaves no voucher and no event.
    written = failing_after_the_outbox(db, monkeypatch)
    with pytest.raises(Boom):
        await vouchers.claim_reward(hooked_ledger, reward_id=reward.id, loyalty_id=member.loyalty_id,
                                    merchant_id=shop.id, idempotency_key="undone", now=clock.now)
    assert written and len(await rows(db, "voucher.issued")) == 1
    async with db.read() as conn:
        assert (await conn.execute(select(func.count(Voucher.id)))).scalar_one() == 1


async def test_a_full_stamp_card_tells_its_merchant(
    db: Database, keys: Any, hooked_ledger: Any, clock: Any, make_merchant: Any, make_member: Any,
) -> None:
    shop, other = (await make_merchant("Shop")).merchant, (await make_merchant("Other")).merchant
    mine, theirs = await hook(db, keys, shop, "voucher.issued"), await hook(db, keys, other, "voucher.issued")
    reward = await create_reward(db, merchant_id=shop.id, name="Coffee", points_cost=50, idempotency_key="r",
                                 now=clock.now)
    card = await stamps.create_stamp_card(hooked_ledger, merchant_id=shop.id, name="Card", stamps_required=2,
                                          min_purchase_minor=100, reward_id=reward.id, idempotency_key="s",
                                          now=clock.now)
    member = (await make_member(shop.id)).member
    for i in range(2):
        earned = await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id,
                                          purchase_amount_minor=5_00, idempotency_key=f"buy-{i}")
        await after_earn(hooked_ledger, earned)
        assert await rows(db, "voucher.issued") == [] or i == 1
    await after_earn(hooked_ledger, earned)  # the same earn again stamps nothing
    found = await rows(db, "voucher.issued")
    assert [(r[0], r[1], r[2], r[3]["stamp_card_id"], r[3]["card_number"]) for r in found] == [
        (mine, shop.id, member.id, card.id, 1)]
    assert theirs not in {r[0] for r in found}


# -------------------------------------------------------------------------------- fraud alerts


async def test_new_fraud_alerts_go_to_the_admin_and_to_the_merchants_the_console_shows_them_to(
    db: Database, settings: Any, keys: Any, ledger: Any, outbox: Any, clock: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coalition.network.jobs import run_analysis

    await forget_cached_insights(settings.redis_url)
    net = await build_planted(db, keys, ledger, clock)  # the ledger on the test's clock
    admin = await hook(db, keys, None, "fraud.alert")
    ring = {name: await hook(db, keys, net.shops[name], "fraud.alert") for name in ("X", "Y")}
    honest = await hook(db, keys, net.shops["A"], "fraud.alert")

    # A run that fails after writing its outbox rows stores nothing and tells nobody.
    assert db.hooks is not None
    before = db.hooks.before
    written = failing_after_the_outbox(db, monkeypatch)
    with pytest.raises(Boom):
        await run_analysis(db, settings, now=clock.now, draw_map=False)
    assert written and written[0] > 0
    assert await rows(db, "fraud.alert") == []
    monkeypatch.setattr(db.hooks, "before", before)

    run = await run_analysis(db, settings, now=clock.now, draw_map=False)
    found = await rows(db, "fraud.alert")
    to_admin = [r[3] for r in found if r[0] == admin]
    assert len(to_admin) == run.summary["fraud_alerts"] >= 2
    assert {a["kind"] for a in to_admin} >= {"SYBIL_FARM", "MERCHANT_COLLUSION"}
    collusion = next(a for a in to_admin if a["kind"] == "MERCHANT_COLLUSION")
    assert set(collusion["member_ids"]) == set(net.colluders)
    assert collusion["merchant_ids"] == [net.shops["X"].id, net.shops["Y"].id]
    assert collusion["reason"]  # the admin gets the analysis's explanation
    assert all(r[1] is None for r in found if r[0] == admin)  # the merchants' copies are not the admin's too
    assert honest not in {r[0] for r in found}
    for name, endpoint in ring.items():
        shop = net.shops[name]
        (got,) = [r for r in found if r[0] == endpoint]
        assert got[1] == shop.id
        data = got[3]
        assert set(data) == {"kind", "score", "member_ids"}  # no explanation: it names the other merchants
        assert (data["kind"], data["score"]) == ("MERCHANT_COLLUSION", collusion["score"])
        own = {m for m, home in net.members.items() if home == name} | await _buyers(db, shop.id)
        assert data["member_ids"] and set(data["member_ids"]) <= own & set(net.colluders)

    sent = {endpoint: data["fraudAlert"] for endpoint, _, data in await bodies(db, keys, "fraud.alert")
            if endpoint != admin}
    assert set(sent) == set(ring.values())
    assert all("merchants" not in alert and "reason" not in alert and alert["kind"] == "MERCHANT_COLLUSION"
               for alert in sent.values())

    # The next run finds the same alerts: nobody is told again.
    await run_analysis(db, settings, now=clock.now, draw_map=False)
    assert len(await rows(db, "fraud.alert")) == len(found)
    async with db.read() as conn:
        assert (await conn.execute(select(func.count(InsightRun.id)))).scalar_one() >= 2


async def _buyers(db: Database, merchant_id: int) -> set[int]:
    from coalition.ledger.models import Entry

    async with db.read() as conn:
        return set((await conn.execute(select(Entry.member_id).where(Entry.merchant_id == merchant_id))).scalars())
