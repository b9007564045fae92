"""Hypothesis over random ledger activity and consecutive batches, under both funding models.

Each example adds random earns, redemptions, reversals, expiries and settlement runs to
the same database (so later examples settle on top of earlier batches), closes a final
batch and checks every batch so far:

- exact zero-sum: positions + network income = 0, and positions = the netting of the lines;
- every honored, issued and expired point is settled exactly once across the batches;
- reversals of settled transactions are adjustments naming the original and its batch;
- netting never increases what moves (net <= gross); |residue| <= lines / 2;
- money: each merchant's positions over all batches stay within half a minor unit per
  line of an independent, row-by-row computation of the exact amounts;
- every statement verifies against the signed, hash-chained batch.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settlement_activity import LEDGER_OPERATIONS, Operation, apply_operations
from sqlalchemy import select
from sqlalchemy.orm import aliased

from coalition.ledger.models import Account, Allocation, AllocationKind, Entry, Posting
from coalition.settlement import netting
from coalition.settlement.models import LineKind, SettlementBatch, SettlementLine, SettlementPosition
from coalition.settlement.policy import set_policy
from coalition.settlement.service import export_statement
from coalition.settlement.statements import verify_export

VALUE, RATE, BREAKAGE = 3, Decimal("0.85"), Decimal("0.35")

operations = st.lists(st.one_of(
    *LEDGER_OPERATIONS,
    st.tuples(st.just("settle")),
    st.tuples(st.just("expire")),
), min_size=4, max_size=30)


async def _apply(s: Any, members: list[str], done: list[Any], ops: list[Operation]) -> None:
    async def other(op: Operation) -> None:
        if op[0] == "settle":
            await s.settle()
        elif op[0] == "expire":
            s.clock.advance(days=400)
            await s.ledger.expire_lots()

    await apply_operations(s, members, done, ops, other)


def _exact_legs(model: str, kind: str, issuer: int | None, redeemer: int | None, points: int) -> dict[Any, Decimal]:
    """Row-by-row exact money (an independent reading of the pricing table)."""
    value = Decimal(points * VALUE)
    if kind == "issued":
        return {issuer: -value} if model == "ISSUANCE" else {}
    if kind == "expired":
        return {issuer: value * BREAKAGE} if model == "ISSUANCE" else {}
    if model == "REDEMPTION" and issuer == redeemer:
        return {}
    legs: dict[Any, Decimal] = {redeemer: value * RATE}
    if model == "REDEMPTION":
        legs[issuer] = legs.get(issuer, Decimal(0)) - value
    return legs


async def _check(s: Any, model: str) -> None:
    async with s.db.read() as conn:
        batches = list(await conn.execute(select(SettlementBatch).order_by(SettlementBatch.seq)))
        lines = list(await conn.execute(select(SettlementLine)))
        positions = list(await conn.execute(select(SettlementPosition)))
        through = batches[-1].through_entry_id
        original = aliased(Entry)
        honored_rows = list(await conn.execute(
            select(Allocation.kind, Allocation.issuer_merchant_id, Allocation.merchant_id, Allocation.points)
            .where(Allocation.entry_id <= through, Allocation.kind.in_(
                [AllocationKind.REDEEM, AllocationKind.CAPTURE, AllocationKind.RESTORE, AllocationKind.EXPIRY]))))
        issued_rows = list(await conn.execute(
            select(Posting.account_id, Posting.points).where(Posting.entry_id <= through,
                                                             Posting.account == Account.ISSUED)))
        reversals = {r.id: r.reverses_id for r in await conn.execute(
            select(Entry.id, Entry.reverses_id).join(original, original.id == Entry.reverses_id))}

    # Exact zero-sum and netting, per batch; the chain.
    for i, batch in enumerate(batches):
        own_lines = [line for line in lines if line.batch_id == batch.id]
        own_positions = {p.merchant_id: p.net_minor for p in positions if p.batch_id == batch.id}
        assert sum(own_positions.values()) + batch.network_income_minor == 0
        recomputed = netting.net(StoredLeg(line) for line in own_lines)
        # A merchant whose activity netted out within the batch has a row (its point counts) at 0.
        assert {m: v for m, v in recomputed.positions.items() if v} == {m: v for m, v in own_positions.items() if v}
        assert (recomputed.gross_minor, recomputed.net_minor) == (batch.gross_minor, batch.net_minor)
        assert batch.net_minor <= batch.gross_minor
        assert abs(Decimal(batch.residue_minor)) <= Decimal(len(own_lines)) / 2
        if i:
            assert batch.after_entry_id == batches[i - 1].through_entry_id
            assert batch.previous_batch_id == batches[i - 1].id
        else:
            assert batch.after_entry_id == 0

    # Every point settled once.
    settled_honored: dict[tuple[Any, Any], int] = {}
    settled_issued: dict[Any, int] = {}
    settled_expired: dict[Any, int] = {}
    for line in lines:
        if line.kind == LineKind.EXPIRED:
            settled_expired[line.issuer_merchant_id] = settled_expired.get(line.issuer_merchant_id, 0) + line.points
        elif line.redeemer_merchant_id is not None:
            k = (line.issuer_merchant_id, line.redeemer_merchant_id)
            settled_honored[k] = settled_honored.get(k, 0) + line.points
        else:
            settled_issued[line.issuer_merchant_id] = settled_issued.get(line.issuer_merchant_id, 0) + line.points
    ledger_honored: dict[tuple[Any, Any], int] = {}
    ledger_expired: dict[Any, int] = {}
    for kind, issuer, redeemer, points in honored_rows:
        if kind == AllocationKind.EXPIRY:
            ledger_expired[issuer] = ledger_expired.get(issuer, 0) + points
        else:
            sign = -1 if kind == AllocationKind.RESTORE else 1
            ledger_honored[(issuer, redeemer)] = ledger_honored.get((issuer, redeemer), 0) + sign * points
    ledger_issued: dict[Any, int] = {}
    for account_id, points in issued_rows:
        ledger_issued[account_id] = ledger_issued.get(account_id, 0) - points
    assert {k: v for k, v in settled_honored.items() if v} == {k: v for k, v in ledger_honored.items() if v}
    assert {k: v for k, v in settled_issued.items() if v} == {k: v for k, v in ledger_issued.items() if v}
    assert {k: v for k, v in settled_expired.items() if v} == {k: v for k, v in ledger_expired.items() if v}

    # Adjustments point at the original and the earlier batch that settled it.
    by_id = {b.id: b for b in batches}
    for line in lines:
        if line.kind == LineKind.ADJUSTMENT:
            assert reversals[line.reversal_entry_id] == line.original_entry_id
            settled_in = by_id[line.original_batch_id]
            assert settled_in.after_entry_id < line.original_entry_id <= settled_in.through_entry_id
            assert settled_in.seq < by_id[line.batch_id].seq

    # Money within rounding of an independent exact computation (single policy version).
    exact: dict[Any, Decimal] = {}
    for kind, issuer, redeemer, points in honored_rows:
        sign = -1 if kind == AllocationKind.RESTORE else 1
        what = "expired" if kind == AllocationKind.EXPIRY else "honored"
        for party, amount in _exact_legs(model, what, issuer, redeemer, sign * points).items():
            exact[party] = exact.get(party, Decimal(0)) + amount
    for account_id, points in issued_rows:
        for party, amount in _exact_legs(model, "issued", account_id, None, -points).items():
            exact[party] = exact.get(party, Decimal(0)) + amount
    totals: dict[int, int] = {}
    touching: dict[int, int] = {}
    for p in positions:
        totals[p.merchant_id] = totals.get(p.merchant_id, 0) + p.net_minor
    for line in lines:
        for party in {line.issuer_merchant_id, line.redeemer_merchant_id} - {None}:
            touching[party] = touching.get(party, 0) + 1
    for merchant, amount in exact.items():
        if merchant is not None:
            assert abs(totals.get(merchant, 0) - amount) <= Decimal(touching.get(merchant, 0)) / 2, merchant

    # The latest batch's statements all verify, and each merchant's own export proves its statement alone.
    document = await export_statement(s.db, s.keys, batches[-1].id)
    verify_export(document, s.keys.public_key_b64)
    for p in positions:
        if p.batch_id == batches[-1].id:
            own = await export_statement(s.db, s.keys, p.batch_id, p.merchant_id)
            (statement,) = verify_export(own, s.keys.public_key_b64, merchant_id=p.merchant_id).merchants
            assert statement["figures"]["netMinor"] == p.net_minor


class StoredLeg:
    def __init__(self, line: Any) -> None:
        self.issuer, self.redeemer = line.issuer_merchant_id, line.redeemer_merchant_id
        self.issuer_minor, self.redeemer_minor = line.issuer_minor, line.redeemer_minor


async def _run_property(shops: Any, model: str, ops: list[tuple[Any, ...]], state: dict[str, Any]) -> None:
    s = shops
    if "members" not in state:
        await set_policy(s.db, s.settings, now=s.clock(), effective_from=s.clock() - dt.timedelta(days=1),
                         point_value_minor=VALUE, funding_model=model, reimbursement_rate=str(RATE),
                         breakage_share=str(BREAKAGE))
        second = await s.make_member(s.b.id)
        state["members"] = [s.loyalty_id, second.member.loyalty_id]
        state["done"] = []
    await _apply(s, state["members"], state["done"], ops)
    await s.settle()
    await _check(s, model)


PROPERTY_SETTINGS = settings(max_examples=30, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY_SETTINGS
@given(ops=operations)
async def test_issuance_model_settles_every_point_once_and_exactly(shops: Any, ops: list[tuple[Any, ...]]) -> None:
    await _run_property(shops, "ISSUANCE", ops, _state(shops))


@PROPERTY_SETTINGS
@given(ops=operations)
async def test_redemption_model_settles_every_point_once_and_exactly(shops: Any, ops: list[tuple[Any, ...]]) -> None:
    await _run_property(shops, "REDEMPTION", ops, _state(shops))


def _state(shops: Any) -> dict[str, Any]:
    state: dict[str, Any] = shops.__dict__.setdefault("_property_state", {})
    return state
