"""Settlement of gift cards: the issuer holds the cash, so it owes each partner what its cards bought there.

A worked example (with and without the network's fee), a refund after the spend was settled
(an adjustment in the next batch), and a hypothesis property over random points and gift card
activity and consecutive batches: every batch is zero-sum across points and money, every cent
spent at a partner is settled exactly once, and every statement verifies.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from coalition.errors import DomainError
from coalition.giftcards.models import GiftEntry
from coalition.giftcards.service import GiftCards
from coalition.settlement import netting
from coalition.settlement.models import LineKind, SettlementBatch, SettlementLine, SettlementPosition
from coalition.settlement.service import batch_matrix, export_statement
from coalition.settlement.statements import verify_export
from coalition.settlement.whatif import simulate_settlement


def gift_cards(shops: Any, fee: str = "0") -> GiftCards:
    return GiftCards(shops.db, dataclasses.replace(shops.settings, gift_card_fee_rate=fee), shops.keys,
                     clock=shops.clock)


async def spend(gift: GiftCards, shops: Any, code: str, amount: int, at: Any) -> Any:
    return await gift.redeem(merchant_id=at.id, caller_key="till", code=code, amount_minor=amount,
                             idempotency_key=shops.key("gift-spend"))


@pytest.mark.parametrize(("fee", "b_gets", "c_gets", "network"), [("0", 1200, 300, 0), ("0.025", 1170, 292, 38)])
async def test_a_card_sold_at_a_and_spent_at_b_makes_a_owe_b(shops: Any, fee: str, b_gets: int, c_gets: int,
                                                               network: int) -> None:
    gift = gift_cards(shops, fee)
    shops.settings = dataclasses.replace(shops.settings, gift_card_fee_rate=fee)
    sold = await gift.issue(merchant_id=shops.a.id, amount_minor=5000, idempotency_key="sale")
    code = str(sold.code)
    await spend(gift, shops, code, 1200, shops.b)
    await spend(gift, shops, code, 300, shops.c)
    await spend(gift, shops, code, 500, shops.a)  # at the issuer itself: no money moves
    run = await shops.settle()
    lines = [line for line in await shops.lines(run.batch.id) if line.kind == LineKind.GIFT_CARD]
    assert [(x.issuer_merchant_id, x.redeemer_merchant_id, x.points, x.issuer_minor, x.redeemer_minor)
            for x in lines] == [(shops.a.id, shops.b.id, 1200, -1200, b_gets), (shops.a.id, shops.c.id, 300, -300,
                                                                                  c_gets)]
    positions = await shops.positions(run.batch.id)
    assert positions == {shops.a.id: -1500, shops.b.id: b_gets, shops.c.id: c_gets}
    assert run.batch.network_income_minor == network and sum(positions.values()) + network == 0
    assert run.batch.through_gift_entry_id is not None
    cells = await batch_matrix(shops.db, run.batch.id, merchant_id=shops.b.id)
    assert [(c.kind, c.issuer, c.redeemer, c.points) for c in cells] == [("GIFT_CARD", shops.a.id, shops.b.id, 1200)]
    # statements are signed as for points and name the GIFT_CARD lines
    document = await export_statement(shops.db, shops.keys, run.batch.id, shops.b.id)
    (statement,) = verify_export(document, shops.keys.public_key_b64, merchant_id=shops.b.id).merchants
    assert statement["figures"]["netMinor"] == b_gets
    assert '"kind":"GIFT_CARD"' in str(document) or "GIFT_CARD" in str(statement)
    # a second batch settles nothing again
    again = await shops.settle()
    assert [x for x in await shops.lines(again.batch.id) if x.kind == LineKind.GIFT_CARD] == []


async def test_a_refund_after_close_is_settled_in_the_next_batch(shops: Any) -> None:
    gift = gift_cards(shops)
    sold = await gift.issue(merchant_id=shops.a.id, amount_minor=5000, idempotency_key="sale")
    spent = await spend(gift, shops, str(sold.code), 1000, shops.b)
    first = await shops.settle()
    assert await shops.positions(first.batch.id) == {shops.a.id: -1000, shops.b.id: 1000}
    refund = await gift.refund(merchant_id=shops.b.id, entry_id=spent.entry.id, idempotency_key="r")
    second = await shops.settle()
    (line,) = [x for x in await shops.lines(second.batch.id) if x.kind == LineKind.GIFT_CARD]
    assert (line.points, line.issuer_minor, line.redeemer_minor) == (-1000, 1000, -1000)
    assert (line.reversal_entry_id, line.original_entry_id) == (refund.entry.id, spent.entry.id)
    assert await shops.positions(second.batch.id) == {shops.a.id: 1000, shops.b.id: -1000}


async def test_the_what_if_shows_gift_card_money_as_the_run_settles_it(shops: Any) -> None:
    gift = gift_cards(shops, "0.025")
    shops.settings = dataclasses.replace(shops.settings, gift_card_fee_rate="0.025")
    sold = await gift.issue(merchant_id=shops.a.id, amount_minor=5000, idempotency_key="sale")
    await spend(gift, shops, str(sold.code), 1200, shops.b)
    shops.clock.advance(minutes=1)
    ahead = await simulate_settlement(shops.db, shops.settings, period_end=shops.clock(), now=shops.clock(),
                                      reimbursement_rate=Decimal("0.5"))
    run = await shops.settle()
    closed = await simulate_settlement(shops.db, shops.settings, batch_id=run.batch.id,
                                       reimbursement_rate=Decimal("0.5"))
    stored = await shops.positions(run.batch.id)
    assert stored == {shops.a.id: -1200, shops.b.id: 1170}
    for simulation in (ahead, closed):
        # gift card money does not depend on the points policy: the same in both columns, and as settled
        for figures in (simulation.current, simulation.simulated):
            assert {m: f.net_minor for m, f in figures.merchants.items() if f.net_minor} == stored
            assert [(x.kind, x.points) for x in figures.lines] == [(LineKind.GIFT_CARD, 1200)]
    later = await shops.settle()
    again = await simulate_settlement(shops.db, shops.settings, batch_id=later.batch.id)
    assert again.current.lines == [] and await shops.positions(later.batch.id) == {}


operations = st.lists(st.one_of(
    st.tuples(st.just("earn"), st.integers(0, 2), st.integers(1, 200)),
    st.tuples(st.just("redeem"), st.integers(0, 2), st.integers(1, 150)),
    st.tuples(st.just("issue"), st.integers(0, 2), st.integers(1, 5000)),
    st.tuples(st.just("spend"), st.integers(0, 30), st.integers(0, 2), st.integers(1, 3000)),
    st.tuples(st.just("refund"), st.integers(0, 30)),
    st.tuples(st.just("settle")),
), min_size=4, max_size=30)
FEE = "0.015"


async def _apply(s: Any, gift: GiftCards, state: dict[str, Any], ops: list[tuple[Any, ...]]) -> None:
    partners = [s.a, s.b, s.c]
    for op in ops:
        s.clock.advance(minutes=1)
        try:
            if op[0] == "earn":
                await s.earn(op[2], partners[op[1]])
            elif op[0] == "redeem":
                await s.redeem(op[2], partners[op[1]])
            elif op[0] == "issue":
                sold = await gift.issue(merchant_id=partners[op[1]].id, amount_minor=op[2],
                                        idempotency_key=s.key("gift-issue"))
                state["codes"].append(str(sold.code))
            elif op[0] == "spend" and state["codes"]:
                done = await spend(gift, s, state["codes"][op[1] % len(state["codes"])], op[3], partners[op[2]])
                state["spends"].append(done.entry)
            elif op[0] == "refund" and state["spends"]:
                entry = state["spends"][op[1] % len(state["spends"])]
                await gift.refund(merchant_id=entry.merchant_id, entry_id=entry.id, idempotency_key=s.key("gift-r"))
            elif op[0] == "settle":
                await s.settle()
        except DomainError:
            pass  # insufficient points or funds, refunded already: refused and nothing written


async def _check(s: Any) -> None:
    async with s.db.read() as conn:
        batches = list(await conn.execute(select(SettlementBatch).order_by(SettlementBatch.seq)))
        lines = list(await conn.execute(select(SettlementLine)))
        positions = list(await conn.execute(select(SettlementPosition)))
        through_gift = batches[-1].through_gift_entry_id or 0
        spent_rows = list(await conn.execute(select(GiftEntry.id, GiftEntry.issuer_merchant_id,
                                                    GiftEntry.merchant_id, GiftEntry.spent_minor)
                                             .where(GiftEntry.id <= through_gift, GiftEntry.spent_minor != 0)))
        reverses = {r.id: r.reverses_id for r in await conn.execute(
            select(GiftEntry.id, GiftEntry.reverses_id).where(GiftEntry.reverses_id.is_not(None)))}
    # Zero-sum across points and money, per batch; the positions are the netting of all its lines.
    previous = 0
    for batch in batches:
        own_lines = [line for line in lines if line.batch_id == batch.id]
        own = {p.merchant_id: p.net_minor for p in positions if p.batch_id == batch.id}
        assert sum(own.values()) + batch.network_income_minor == 0
        recomputed = netting.net(_Leg(line) for line in own_lines)
        assert {m: v for m, v in recomputed.positions.items() if v} == {m: v for m, v in own.items() if v}
        # the gift card windows tile the entries: each batch starts where the one before stopped
        gift_through = batch.through_gift_entry_id or 0
        assert gift_through >= previous
        for line in own_lines:
            if line.kind == LineKind.GIFT_CARD and line.original_entry_id is not None:
                # an adjustment after close: the spend it refunds was settled by an earlier batch
                assert line.original_entry_id <= previous < line.reversal_entry_id <= gift_through
                assert reverses[line.reversal_entry_id] == line.original_entry_id
        previous = gift_through
    # Every cent spent at a partner (net of refunds) settled exactly once, the fee within rounding.
    settled: dict[tuple[int, int], int] = {}
    received: dict[tuple[int, int], int] = {}
    count: dict[tuple[int, int], int] = {}
    for line in lines:
        if line.kind == LineKind.GIFT_CARD:
            cell = (line.issuer_merchant_id, line.redeemer_merchant_id)
            settled[cell] = settled.get(cell, 0) + line.points
            received[cell] = received.get(cell, 0) + line.redeemer_minor
            count[cell] = count.get(cell, 0) + 1
            assert line.issuer_minor == -line.points
    ledger: dict[tuple[int, int], int] = {}
    for _, issuer, merchant, amount in spent_rows:
        if issuer != merchant:
            ledger[(issuer, merchant)] = ledger.get((issuer, merchant), 0) + amount
    assert {k: v for k, v in settled.items() if v} == {k: v for k, v in ledger.items() if v}
    for cell, amount in ledger.items():
        exact = Decimal(amount) * (1 - Decimal(FEE))
        assert abs(received.get(cell, 0) - exact) <= Decimal(count.get(cell, 0)) / 2
    # The latest batch's statements verify.
    verify_export(await export_statement(s.db, s.keys, batches[-1].id), s.keys.public_key_b64)


class _Leg:
    def __init__(self, line: Any) -> None:
        self.issuer, self.redeemer = line.issuer_merchant_id, line.redeemer_merchant_id
        self.issuer_minor, self.redeemer_minor = line.issuer_minor, line.redeemer_minor


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_points_and_gift_cards_settle_every_cent_once_and_zero_sum(shops: Any,
                                                                         ops: list[tuple[Any, ...]]) -> None:
    state: dict[str, Any] = shops.__dict__.setdefault("_gift_state", {"codes": [], "spends": []})
    shops.settings = dataclasses.replace(shops.settings, gift_card_fee_rate=FEE)
    gift = gift_cards(shops, FEE)
    if not state["codes"]:
        await shops.earn(500, shops.a)
    await _apply(shops, gift, state, ops)
    await shops.settle()
    await _check(shops)
