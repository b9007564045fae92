"""``coalition policy``: the network's versioned settlement policy."""

from __future__ import annotations

from typing import Any

import click

from coalition.cli._common import _aware_datetime, _run, _settings, _with_db, console
from coalition.db import Database


@click.group()
def policy() -> None:
    """The network's settlement policy (versioned)."""


def _print_policy(p: Any) -> None:
    for name, value in [*p.as_dict().items(), ("redeemWithoutProof", p.redeem_without_proof_points)]:
        console.print(f"{name:>18}  {value}")


@policy.command("show")
def policy_show() -> None:
    """Show the policy in force now."""
    from coalition.settlement.policy import current_policy

    settings = _settings()

    async def run(db: Database) -> Any:
        return await current_policy(db, settings)

    _print_policy(_run(_with_db(settings, run)))


@policy.command("set")
@click.option("--point-value-minor", type=int, help="Money (minor units) per point.")
@click.option("--funding-model", help="ISSUANCE or REDEMPTION.")
@click.option("--reimbursement-rate", help="Decimal 0..1 paid to the honoring merchant, e.g. 0.90.")
@click.option("--breakage-share", help="Decimal 0..1 of expired points' funding returned to the issuer.")
@click.option("--period", help="DAILY, WEEKLY or MONTHLY.")
@click.option("--timezone", help="IANA time zone the periods are cut in.")
@click.option("--redeem-without-proof-points", type=int,
              help="Points a merchant may redeem from one member in 24 h without the member's proof of presence.")
@click.option("--effective-from", callback=_aware_datetime, help="ISO date-time it applies from (default: now).")
@click.option("--idempotency-key", help="Makes a retry safe: run again with the same key and options, the version "
                                       "written the first time is shown, not appended again.")
def policy_set(**changes: Any) -> None:
    """Append a policy version; options left out keep their current value."""
    from coalition.settlement.policy import set_policy

    settings = _settings()

    async def run(db: Database) -> Any:
        return await set_policy(db, settings, **changes)

    _print_policy(_run(_with_db(settings, run)))
