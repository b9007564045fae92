"""``coalition programs``: the rewards, stamp cards and quests the network runs, with their use."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from coalition.cli._common import _run, _settings, _with_db, console
from coalition.db import Database


@click.command("programs")
def programs() -> None:
    """List rewards (vouchers by status), stamp cards (cards filled) and partner quests (completions)."""
    from coalition.programs.report import overview

    async def read(db: Database) -> Any:
        return await overview(db)

    rewards, cards, quests = _run(_with_db(_settings(), read))
    table = Table(title="Rewards")
    for column in ("merchant", "reward", "points", "stock left", "issued", "used", "expired", "cancelled"):
        table.add_column(column)
    for r in rewards:
        table.add_row(r.merchant, r.name, f"{r.points_cost:,}", "unlimited" if r.stock_left is None
                      else f"{r.stock_left:,}", *(str(r.vouchers[s]) for s in ("ISSUED", "USED", "EXPIRED",
                                                                                "CANCELLED")))
    console.print(table)
    table = Table(title="Stamp cards")
    for column in ("merchant", "card", "stamps", "min purchase (minor)", "members", "cards filled"):
        table.add_column(column)
    for c in cards:
        table.add_row(c.merchant, c.name, str(c.stamps_required), f"{c.min_purchase_minor:,}", str(c.members),
                      str(c.cards_filled))
    console.print(table)
    table = Table(title="Partner quests")
    for column in ("quest", "visit", "within", "bonus", "funded by", "completed"):
        table.add_column(column)
    for q in quests:
        table.add_row(q.name, f"{q.visits_required} of {q.shops} shops", f"{q.window_days} days",
                      f"{q.bonus_points:,}", q.funding, str(q.completions))
    console.print(table)
