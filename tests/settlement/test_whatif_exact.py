"""The what-if reads its window once and prices it twice: its figures are exactly a run's.

Hypothesis over random ledger activity under random policy versions (changed between
transactions, so a window spans several), and a random simulated policy:

- before a run, ``current`` is the window read and priced under the stored versions and
  ``simulated`` the window read under the one simulated policy (``_computed``), line for line
  (kind, policy, parties, points, money, exact amount, reversal references);
- after the run, re-pricing its batch (from the rows the batch kept) gives ``current`` equal to
  the stored batch (lines, positions, totals, residue) and ``simulated`` equal to the window read
  again; and the same from the ledger, for a batch closed before batches kept their rows.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settlement_activity import LEDGER_OPERATIONS, Operation, apply_operations
from sqlalchemy import delete, select

from coalition.settlement.compute import read_settlement_window
from coalition.settlement.models import SettlementBatch, SettlementLine, SettlementWindow
from coalition.settlement.policy import policy_versions, set_policy
from coalition.settlement.pricing import Line, MerchantFigures, SettlementFigures, price_window
from coalition.settlement.service import batch_positions
from coalition.settlement.whatif import simulate_settlement

rates = st.decimals(min_value=0, max_value=1, places=2).map(str)
policies = st.fixed_dictionaries({
    "point_value_minor": st.integers(1, 7),
    "funding_model": st.sampled_from(["ISSUANCE", "REDEMPTION"]),
    "reimbursement_rate": rates,
    "breakage_share": rates,
})
operations = st.lists(st.one_of(
    *LEDGER_OPERATIONS,
    st.tuples(st.just("policy"), policies),
    st.tuples(st.just("expire")),
), min_size=3, max_size=25)


async def _apply(s: Any, members: list[str], done: list[Any], ops: list[Operation]) -> None:
    async def other(op: Operation) -> None:
        if op[0] == "policy":
            await set_policy(s.db, s.settings, now=s.clock(), effective_from=s.clock(), **op[1])
        elif op[0] == "expire":
            s.clock.advance(days=400)

    await apply_operations(s, members, done, ops, other)


def _line(line: Line) -> tuple[Any, ...]:
    return (line.kind, line.policy.id, line.issuer, line.redeemer, line.points, line.issuer_minor,
            line.redeemer_minor, Decimal(line.exact_minor), line.reversal_entry_id, line.original_entry_id,
            line.original_batch_id, line.program)


def _stored_line(row: Any) -> tuple[Any, ...]:
    return (row.kind, row.policy_id, row.issuer_merchant_id, row.redeemer_merchant_id, row.points, row.issuer_minor,
            row.redeemer_minor, Decimal(row.exact_minor), row.reversal_entry_id, row.original_entry_id,
            row.original_batch_id, row.program)


def _same(a: SettlementFigures, b: SettlementFigures) -> None:
    assert [(_line(x), x.policy) for x in a.lines] == [(_line(x), x.policy) for x in b.lines]
    assert a.merchants == b.merchants
    assert a.netting == b.netting
    assert a.residue_minor == b.residue_minor
    assert a.policies == b.policies


async def _computed(s: Any, after: int, through: int, override: Any = None) -> SettlementFigures:
    async with s.db.read() as conn:
        versions = [override] if override is not None else await policy_versions(conn, s.settings)
        return price_window(await read_settlement_window(conn, s.settings, versions, after, through, None))


async def _check_against_stored(s: Any, batch_id: int, simulation: Any) -> None:
    async with s.db.read() as conn:
        batch = (await conn.execute(select(SettlementBatch).where(SettlementBatch.id == batch_id))).one()
        stored = list(await conn.execute(select(SettlementLine).where(SettlementLine.batch_id == batch_id)
                                         .order_by(SettlementLine.line_no)))
    current = simulation.current
    assert [_line(x) for x in current.lines] == [_stored_line(x) for x in stored]
    stored_figures = {p.merchant_id: MerchantFigures(
        p.merchant_id, p.points_issued, p.points_honored, p.points_reversed, p.points_expired, p.charges_minor,
        p.reimbursements_minor, p.breakage_minor, p.adjustments_minor) for p in await batch_positions(s.db, batch_id)}
    assert current.merchants == stored_figures
    assert {m: f.net_minor for m, f in stored_figures.items()} == await s.positions(batch_id)
    n = current.netting
    assert (n.gross_minor, n.net_minor, n.network_income_minor) == (
        batch.gross_minor, batch.net_minor, batch.network_income_minor)
    assert current.residue_minor == Decimal(batch.residue_minor)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, simulated=policies)
async def test_the_what_if_prices_exactly_as_a_run(shops: Any, ops: list[tuple[Any, ...]],
                                                   simulated: dict[str, Any]) -> None:
    s = shops
    state: dict[str, Any] = s.__dict__.setdefault("_whatif_state", {})
    if "members" not in state:
        second = await s.make_member(s.b.id)
        state["members"], state["done"] = [s.loyalty_id, second.member.loyalty_id], []
    await _apply(s, state["members"], state["done"], ops)
    s.clock.advance(minutes=1)

    before = await simulate_settlement(s.db, s.settings, period_end=s.clock(), now=s.clock(), **simulated)
    window = (before.current.after_entry_id, before.current.through_entry_id)
    _same(before.current, await _computed(s, *window))
    _same(before.simulated, await _computed(s, *window, override=before.policy))

    batch = (await s.settle()).batch
    assert batch is not None and (batch.after_entry_id, batch.through_entry_id) == window
    after = await simulate_settlement(s.db, s.settings, batch_id=batch.id, **simulated)
    await _check_against_stored(s, batch.id, after)
    _same(after.simulated, await _computed(s, *window, override=after.policy))
    _same(after.simulated, before.simulated)

    async with s.db.transaction() as conn:  # as for a batch closed before runs kept their rows
        assert (await conn.execute(delete(SettlementWindow).where(SettlementWindow.batch_id == batch.id))
                ).rowcount == 1
    from_ledger = await simulate_settlement(s.db, s.settings, batch_id=batch.id, **simulated)
    _same(from_ledger.current, after.current)
    _same(from_ledger.simulated, after.simulated)
