"""What-if: a period's settlement under another policy, beside the figures of the real one. Reads only.

:func:`simulate_settlement` reads one window of ledger entries once
(:func:`coalition.settlement.compute.read_settlement_window`), or takes the rows a closed batch
kept, and prices it twice: under the stored policy versions (what a run would close, or did
close) and under one simulated policy applied to every transaction. Nothing is written, so an
admin can try a reimbursement rate or a funding model and see each partner's net position move.

The window is either

- ``period_end``: the activity a settlement run at ``period_end`` would close now (the
  entries after the last batch, created before ``period_end``), or
- ``batch_id``: a closed batch's own entries, to ask what that period would have settled to.
  The batch kept the rows it was priced from (:mod:`coalition.settlement.windows`): they are
  priced again, not read from the ledger (a year's window is a million allocations to sum).

Gift card money spent in the window (the gift card entries a run would close, or the batch
closed) is in both sets of figures, as in a run: it does not depend on the points policy, so it
is the same in both.

The simulated policy is the version in force at the period's end with the given changes
(``point_value_minor``, ``funding_model``, ``reimbursement_rate``, ``breakage_share``),
checked like a real policy change. Unlike a run, the window's upper id is read without
locking the ledger: a write still in flight at ``period_end`` may be left out of a
simulation but never out of the real run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.config import Settings
from coalition.db import Database, utcnow
from coalition.errors import InvalidInput
from coalition.giftcards.models import GiftEntry
from coalition.i18n import Formatter
from coalition.ledger.models import Entry
from coalition.settlement.compute import read_settlement_window
from coalition.settlement.errors import BatchNotFound, InvalidPeriodEnd
from coalition.settlement.exports import party_names
from coalition.settlement.models import SettlementBatch
from coalition.settlement.policy import Policy, policy_at, policy_versions, validate_policy
from coalition.settlement.pricing import MerchantFigures, SettlementFigures, WindowRows, price_window, under_one_policy
from coalition.settlement.reports import BatchView, LineRow, MatrixCell, PositionRow
from coalition.settlement.service import check_period_end
from coalition.settlement.windows import stored_window

POLICY_FIELDS = ("point_value_minor", "funding_model", "reimbursement_rate", "breakage_share")


@dataclass(frozen=True)
class PositionChange:
    """One merchant's figures under the real policy and the simulated one."""

    merchant_id: int
    current: MerchantFigures
    simulated: MerchantFigures

    @property
    def delta_minor(self) -> int:
        return self.simulated.net_minor - self.current.net_minor


@dataclass(frozen=True)
class Simulation:
    period_start: dt.datetime
    period_end: dt.datetime
    batch_id: int | None  # the closed batch re-priced, if that was asked
    policy: Policy  # the simulated policy
    current: SettlementFigures  # under the stored policy versions
    simulated: SettlementFigures

    @property
    def changes(self) -> list[PositionChange]:
        ids = sorted(set(self.current.merchants) | set(self.simulated.merchants))
        return [PositionChange(m, self.current.merchants.get(m) or MerchantFigures(m),
                               self.simulated.merchants.get(m) or MerchantFigures(m)) for m in ids]


async def simulate_settlement(
    db: Database,
    settings: Settings,
    *,
    period_end: Any = None,
    batch_id: int | None = None,
    now: dt.datetime | None = None,
    **policy_changes: Any,
) -> Simulation:
    """Price a window under the stored policy and under the changed one; see the module docstring."""
    unknown = set(policy_changes) - set(POLICY_FIELDS)
    if unknown:
        raise TypeError(f"not a policy field: {', '.join(sorted(unknown))}")
    if (period_end is None) == (batch_id is None):
        raise InvalidInput("give periodEnd (the next run's activity) or batchId (a closed batch), not both",
                           code="INVALID_SIMULATION_WINDOW", field="periodEnd")
    if period_end is not None:
        period_end = check_period_end(period_end, now or utcnow())
    async with db.read() as conn:
        versions = await policy_versions(conn, settings)
        if batch_id is not None:
            batch = (await conn.execute(select(SettlementBatch).where(SettlementBatch.id == batch_id))).first()
            if batch is None:
                raise BatchNotFound(f"there is no settlement batch {batch_id}", field="batchId")
            start, end = batch.period_start, batch.period_end
            policy = _simulated_policy(versions, end, policy_changes)
            rows = await stored_window(conn, batch.id) or await _closed_window(conn, settings, versions, batch)
        else:
            policy = _simulated_policy(versions, period_end, policy_changes)
            latest = (await conn.execute(
                select(SettlementBatch).order_by(SettlementBatch.seq.desc()).limit(1))).first()
            if latest is not None and period_end <= latest.period_end:
                raise InvalidPeriodEnd(
                    f"periodEnd {period_end.isoformat()} is not after the last batch's "
                    f"({latest.period_end.isoformat()}): pass batchId to re-price a closed batch",
                    code="PERIOD_END_NOT_AFTER_LAST_BATCH", field="periodEnd")
            after = latest.through_entry_id if latest is not None else 0
            through = int((await conn.execute(select(func.max(Entry.id)).where(
                Entry.id > after, Entry.created_at < period_end))).scalar_one_or_none() or after)
            first = (await conn.execute(select(func.min(Entry.created_at)).where(
                Entry.id > after, Entry.id <= through))).scalar_one_or_none()
            start = latest.period_end if latest is not None else min(first or period_end, period_end)
            end = period_end
            gift_after = (latest.through_gift_entry_id or 0) if latest is not None else 0
            gift_window = (gift_after, int((await conn.execute(select(func.max(GiftEntry.id)).where(
                GiftEntry.id > gift_after, GiftEntry.created_at < period_end))).scalar_one_or_none() or gift_after))
            rows = await read_settlement_window(conn, settings, versions, after, through, gift_window)
    # One read of the window (or the rows its batch kept), priced twice: the rows are sums per policy
    # version, and under_one_policy merges them as a read under the one policy would (identical figures).
    current = price_window(rows)
    simulated = price_window(under_one_policy(rows, policy))
    return Simulation(period_start=start, period_end=end, batch_id=batch_id, policy=policy, current=current,
                      simulated=simulated)


def _simulated_policy(versions: list[Policy], end: dt.datetime, changes: dict[str, Any]) -> Policy:
    """The version in force at the period's end with ``changes``, checked as a real change; a version nobody stored.

    A closed batch's kept rows hold the versions it was priced under: the same as read now, as no
    version may start inside a settled period (:mod:`coalition.settlement.policy`)."""
    return replace(validate_policy(policy_at(versions, end), **changes), id=None)


async def _closed_window(conn: AsyncConnection, settings: Settings, versions: list[Policy], batch: Any) -> WindowRows:
    """A closed batch's window read from the ledger: for the batches closed before runs kept their rows."""
    earlier = (await conn.execute(select(SettlementBatch.through_gift_entry_id)
                                  .where(SettlementBatch.seq < batch.seq)
                                  .order_by(SettlementBatch.seq.desc()).limit(1))).scalar_one_or_none()
    gift_window = (earlier or 0, batch.through_gift_entry_id or earlier or 0)
    return await read_settlement_window(conn, settings, versions, batch.after_entry_id, batch.through_entry_id,
                                        gift_window)


async def simulation_view(db: Database, settings: Settings, simulation: Simulation, *, lang: str = "en") -> BatchView:
    """The simulation as a report (to be read in ``lang``): simulated figures, each merchant's real net beside them."""
    figures = simulation.simulated
    changes = simulation.changes
    t = Formatter(lang, settings.currency, settings.currency_exponent)
    name = await party_names(db, {c.merchant_id for c in changes} | {
        m for line in figures.lines for m in (line.issuer, line.redeemer) if m}, t)

    positions = [PositionRow(
        merchant_id=c.merchant_id, name=name[c.merchant_id], points_issued=c.simulated.points_issued,
        points_honored=c.simulated.points_honored, points_reversed=c.simulated.points_reversed,
        points_expired=c.simulated.points_expired, charges_minor=c.simulated.charges_minor,
        reimbursements_minor=c.simulated.reimbursements_minor, breakage_minor=c.simulated.breakage_minor,
        adjustments_minor=c.simulated.adjustments_minor, net_minor=c.simulated.net_minor) for c in changes]
    lines = [LineRow(kind=line.kind.value, issuer_id=line.issuer, issuer_name=name[line.issuer],
                     redeemer_id=line.redeemer, redeemer_name=name[line.redeemer] if line.redeemer else "",
                     points=line.points, issuer_minor=line.issuer_minor, redeemer_minor=line.redeemer_minor,
                     original_entry_id=line.original_entry_id, original_batch_id=line.original_batch_id,
                     program=line.program.value if line.program is not None else "")
             for line in figures.lines]
    matrix = [MatrixCell(issuer, name[issuer], redeemer, name[redeemer], points, reimbursed)
              for issuer, redeemer, points, reimbursed, _ in figures.matrix]
    p, n = simulation.policy, figures.netting

    _ = t.gettext
    notes = [_("What-if, nothing written: funding model {model}, point value {value} minor unit(s), reimbursement "
               "rate {rate}, breakage share {share}.", model=p.funding_model.value, value=p.point_value_minor,
               rate=p.reimbursement_rate, share=p.breakage_share),
             _("Under the real policy: network income {income}, net {net}.",
               income=t.money(simulation.current.netting.network_income_minor),
               net=t.money(simulation.current.netting.net_minor))]
    return BatchView(
        title=_("What-if settlement to {end} UTC", end=t.datetime(simulation.period_end)), batch_id=simulation.batch_id,
        seq=None, period_start=simulation.period_start, period_end=simulation.period_end, currency=settings.currency,
        currency_exponent=settings.currency_exponent, gross_minor=n.gross_minor, net_minor=n.net_minor,
        network_income_minor=n.network_income_minor, netting_ratio=str(n.netting_ratio), positions=positions,
        lines=lines, matrix=matrix, notes=notes, current_net={c.merchant_id: c.current.net_minor for c in changes},
        lang=lang)
