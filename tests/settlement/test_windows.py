"""The rows a batch was priced from, kept with it: encoded exactly, written by every run, read by the what-if."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from test_pricing import T0, policy

from coalition.settlement.models import FundingModel, ProgramCost, SettlementBatch, SettlementWindow
from coalition.settlement.pricing import WindowRows, price_window
from coalition.settlement.whatif import simulate_settlement
from coalition.settlement.windows import FORMAT, decode, encode


def every_kind_of_row() -> WindowRows:
    """Two versions, the network as issuer, an expiry, reversals in and before the window, gift cards, programs."""
    later = T0 + dt.timedelta(days=10)
    versions = [policy(), policy(FundingModel.REDEMPTION, value=20, rate="0.85", share="0.25", effective_from=later,
                                 policy_id=2)]
    return WindowRows(
        after_entry_id=100, through_entry_id=200, versions=versions,
        allocations=[(1, 2, 0, 100), (1, 2, 1, 40), (None, 3, 1, 7), (1, None, 0, 30)],
        restores=[(1, 2, 150, 20), (1, 2, 160, 30)],
        issued=[(0, 1, None, -500), (1, None, None, -60), (0, 1, 170, 50)],
        originals={150: (120, T0 + dt.timedelta(hours=1)), 160: (90, T0), 170: (80, T0)},
        batches=[(50, 6), (100, 7), (100, 8)],
        after_gift_entry_id=10, through_gift_entry_id=20, gift_spent=[(1, 2, 1500, None, None), (2, 1, -300, 19, 4)],
        gift_fee_rate=Decimal("0.015"),
        programs=[(0, 1, None, ProgramCost.CAMPAIGN, 25), (1, None, None, ProgramCost.QUEST, 10),
                  (0, 1, 2, ProgramCost.VOUCHER, 40)])


def test_the_rows_come_back_exactly_and_price_to_the_same_figures() -> None:
    rows = every_kind_of_row()
    back = decode(encode(rows))
    assert back is not None
    assert back == dataclasses.replace(rows, allocations=[tuple(r) for r in rows.allocations])
    assert price_window(back) == price_window(rows)


def test_rows_in_a_layout_this_code_does_not_know_are_not_read() -> None:
    document = json.loads(encode(every_kind_of_row()))
    document["format"] = FORMAT + 1
    assert decode(json.dumps(document)) is None


async def test_every_run_keeps_its_rows_and_the_what_if_prices_them(shops: Any) -> None:
    s = shops
    await s.worked_example_activity()
    s.clock.advance(minutes=1)
    batch = (await s.settle()).batch
    async with s.db.read() as conn:
        kept = (await conn.execute(select(SettlementWindow.rows).where(SettlementWindow.batch_id == batch.id))
                ).scalar_one()
        stored = (await conn.execute(select(SettlementBatch).where(SettlementBatch.id == batch.id))).one()
    rows = decode(kept)
    assert rows is not None and (rows.after_entry_id, rows.through_entry_id) == (
        stored.after_entry_id, stored.through_entry_id)
    assert price_window(rows).netting.net_minor == stored.net_minor

    # The what-if reads the kept rows, not the ledger: rows changed in place change its figures.
    before = await simulate_settlement(s.db, s.settings, batch_id=batch.id, reimbursement_rate="0.80")
    doubled = dataclasses.replace(rows, allocations=[(*r[:-1], 2 * r[-1]) for r in rows.allocations])
    async with s.db.transaction() as conn:
        await conn.execute(update(SettlementWindow).where(SettlementWindow.batch_id == batch.id)
                           .values(rows=encode(doubled)))
    after = await simulate_settlement(s.db, s.settings, batch_id=batch.id, reimbursement_rate="0.80")
    honored = sum(f.points_honored for f in before.current.merchants.values())
    assert honored > 0
    assert sum(f.points_honored for f in after.current.merchants.values()) == 2 * honored
