"""``coalition programs``: the status tier policy and the merchants' campaigns with their results."""

from __future__ import annotations

from typing import Any

import click

from coalition.cli._common import _run, _settings, _with_db, console
from coalition.db import Database, utcnow


@click.group()
def programs() -> None:
    """Status tiers and campaigns."""


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
    from coalition.programs.campaign_results import campaign_result
    from coalition.programs.campaigns import list_campaigns

    settings = _settings()

    async def run(db: Database) -> list[tuple[Any, Any]]:
        rows = await list_campaigns(db, merchant_id=merchant_id, before_id=None, limit=limit)
        return [(c, await campaign_result(db, c, utcnow(), settings.campaign_min_group_size)) for c in rows]

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
