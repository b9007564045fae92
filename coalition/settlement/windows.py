"""A closed batch's window aggregates, kept with the batch: what its figures were priced from.

A run reads its window's aggregates (:class:`~coalition.settlement.pricing.WindowRows`: sums per
policy version, issuer and redeemer, the reversals, program costs and gift card money) and prices
them. The rows are small beside the window (a few thousand at 50 merchants, where the window is a
year's million transactions), and a closed window never changes, so the run writes them beside the
batch (``settlement_windows``, once, in the run's transaction) and the what-if re-prices a closed
batch from them instead of summing its allocations again: the same input, so the same figures
(:mod:`coalition.settlement.whatif`). Batches closed before migration 0023 have no row; the what-if
reads their window from the ledger as before.

The rows are kept as JSON (plain values: integers, strings for rates and times), with the policy
versions they were priced under, so re-pricing needs nothing else. :func:`encode` and :func:`decode`
are exact inverses (tests/settlement/test_windows.py).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.settlement.models import FundingModel, ProgramCost, SettlementPeriod, SettlementWindow
from coalition.settlement.policy import Policy
from coalition.settlement.pricing import WindowRows

FORMAT = 1  # the JSON's layout; a reader meeting another one reads the window from the ledger


def _policy(p: Policy) -> dict[str, Any]:
    return {"id": p.id, "point_value_minor": p.point_value_minor, "funding_model": p.funding_model.value,
            "reimbursement_rate": str(p.reimbursement_rate), "breakage_share": str(p.breakage_share),
            "period": p.period.value, "timezone": p.timezone, "effective_from": p.effective_from.isoformat(),
            "redeem_without_proof_points": p.redeem_without_proof_points}


def _policy_of(d: dict[str, Any]) -> Policy:
    return Policy(point_value_minor=d["point_value_minor"], funding_model=FundingModel(d["funding_model"]),
                  reimbursement_rate=Decimal(d["reimbursement_rate"]), breakage_share=Decimal(d["breakage_share"]),
                  period=SettlementPeriod(d["period"]), timezone=d["timezone"],
                  effective_from=dt.datetime.fromisoformat(d["effective_from"]), id=d["id"],
                  redeem_without_proof_points=d["redeem_without_proof_points"])


def encode(rows: WindowRows) -> str:
    """``rows`` as JSON text."""
    return json.dumps({
        "format": FORMAT,
        "after_entry_id": rows.after_entry_id, "through_entry_id": rows.through_entry_id,
        "versions": [_policy(p) for p in rows.versions],
        "allocations": [tuple(row) for row in rows.allocations],  # 200,000 cells at 5,000 merchants: 0.1 s
        "restores": [list(row) for row in rows.restores],
        "issued": [list(row) for row in rows.issued],
        "originals": [[rev, orig, at.isoformat()] for rev, (orig, at) in sorted(rows.originals.items())],
        "batches": [list(row) for row in rows.batches],
        "after_gift_entry_id": rows.after_gift_entry_id, "through_gift_entry_id": rows.through_gift_entry_id,
        "gift_spent": [list(row) for row in rows.gift_spent], "gift_fee_rate": str(rows.gift_fee_rate),
        "programs": [[v, issuer, redeemer, program.value, points] for v, issuer, redeemer, program, points
                     in rows.programs],
    }, separators=(",", ":"))


def decode(text: str) -> WindowRows | None:
    """The rows :func:`encode` wrote, or None for a layout this code does not know."""
    d = json.loads(text)
    if d.get("format") != FORMAT:
        return None
    return WindowRows(
        after_entry_id=d["after_entry_id"], through_entry_id=d["through_entry_id"],
        versions=[_policy_of(p) for p in d["versions"]],
        allocations=[tuple(row) for row in d["allocations"]],
        restores=[tuple(row) for row in d["restores"]],
        issued=[tuple(row) for row in d["issued"]],
        originals={rev: (orig, dt.datetime.fromisoformat(at)) for rev, orig, at in d["originals"]},
        batches=[tuple(row) for row in d["batches"]],
        after_gift_entry_id=d["after_gift_entry_id"], through_gift_entry_id=d["through_gift_entry_id"],
        gift_spent=[tuple(row) for row in d["gift_spent"]], gift_fee_rate=Decimal(d["gift_fee_rate"]),
        programs=[(v, issuer, redeemer, ProgramCost(program), points)
                  for v, issuer, redeemer, program, points in d["programs"]],
    )


async def store_window(conn: AsyncConnection, batch_id: int, rows: WindowRows) -> None:
    """Keep the rows batch ``batch_id`` was priced from (in the run's transaction)."""
    await conn.execute(insert(SettlementWindow).values(batch_id=batch_id, rows=encode(rows)))


async def stored_window(conn: AsyncConnection, batch_id: int) -> WindowRows | None:
    """The rows batch ``batch_id`` was priced from, or None (closed before they were kept)."""
    text = (await conn.execute(select(SettlementWindow.rows).where(SettlementWindow.batch_id == batch_id))
            ).scalar_one_or_none()
    return None if text is None else decode(text)
