"""``coalition programs``: rewards, stamp cards and quests with their use; status tiers; campaigns and their lift."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from coalition.cli._common import _run, _settings, _with_db, console
from coalition.db import Database, utcnow


@click.group(invoke_without_command=True)
@click.pass_context
def programs(ctx: click.Context) -> None:
    """Rewards, stamp cards and quests (with no subcommand); status tiers and campaigns (subcommands)."""
    if ctx.invoked_subcommand is None:
        _offers()


@programs.command("tiers")
def programs_tiers() -> None:
    """Show the tier policy in force."""
    from coalition.programs.tier_review import current_tier_policy

    settings = _settings()
    policy = _run(_with_db(settings, current_tier_policy))
    window = "calendar year" if policy.window == "CALENDAR_YEAR" else f"rolling {policy.window_months} months"
    console.print(f"qualifying window: {window}; grace: {policy.grace_days} days; multiplier funded by: "
                  f"{policy.bonus_funder.lower()}")
    for tier in policy.tiers:
        multiplier = tier.multiplier_percent / 100
        console.print(f"  {tier.name:<12} from {tier.threshold_points:>9,} points   x{multiplier:.2f}")


def _lift(percent: float | None, p_value: float | None) -> str:
    if percent is None:
        return "n/a (groups too small, or no base)"
    return f"{percent:+.1f} % (p = {p_value:.3g})" if p_value is not None else f"{percent:+.1f} %"


@programs.command("campaigns")
@click.option("--merchant-id", type=int, help="Only this merchant's campaigns.")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
def programs_campaigns(merchant_id: int | None, limit: int) -> None:
    """List campaigns, newest first, with treated vs control and the lift."""
    from coalition.programs.campaign_snapshots import latest_result
    from coalition.programs.campaigns import list_campaigns

    settings = _settings()

    async def run(db: Database) -> list[tuple[Any, Any]]:
        rows = await list_campaigns(db, merchant_id=merchant_id, before_id=None, limit=limit)
        return [(c, (await latest_result(db, c, utcnow(), settings.campaign_min_group_size,
                                         settings.campaign_results_interval_s)).result) for c in rows]

    found = _run(_with_db(settings, run))
    if not found:
        console.print("no campaigns")
    for campaign, r in found:
        offer = (f"x{campaign.multiplier_percent / 100:.2f}" if campaign.kind == "MULTIPLIER"
                 else f"+{campaign.bonus_points} points")
        console.print(f"[bold]{campaign.name}[/] (merchant {campaign.merchant_id}, {offer}, segment "
                      f"{campaign.segment or 'every member'}, {campaign.control_percent} % held out) "
                      f"{campaign.starts_at:%Y-%m-%d} to {campaign.ends_at:%Y-%m-%d}")
        console.print(f"  treated {r.treated_members:,}: spend {r.treated_spend_minor:,}, visits {r.treated_visits:,}, "
                      f"at partners {r.treated_partner_visits:,}; bonus points {r.bonus_points:,}")
        console.print(f"  control {r.control_members:,}: spend {r.control_spend_minor:,}, visits {r.control_visits:,}, "
                      f"at partners {r.control_partner_visits:,}")
        console.print(f"  lift: spend {_lift(r.spend.percent, r.spend.p_value)}; visits "
                      f"{_lift(r.visits.percent, r.visits.p_value)}; visits to partners "
                      f"{_lift(r.partner_visits.percent, r.partner_visits.p_value)}")


def _offers() -> None:
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
