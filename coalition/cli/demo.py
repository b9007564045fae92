"""``coalition demo``: a demo network, its keys and example requests."""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

import click

from coalition.cli._common import API_URL, _progress, _run, _safe_url, _settings, console, err_console
from coalition.db import Database
from coalition.migrate import migrate as run_migrations

if TYPE_CHECKING:
    from coalition.demo import DemoNetwork


@click.command()
@click.option("--members", default=300, show_default=True, type=click.IntRange(1, 10_000_000),
              help="How many members to enroll. From 5,000 on, a synthetic network is bulk-loaded instead "
                   "(about ten purchases per member, planted fraud; see coalition.network.synthetic).")
@click.option("--merchants", default=5, show_default=True, type=click.IntRange(1, 50),
              help="How many partner shops (bakery, café, bookshop, florist, bike repair, ...).")
@click.option("--seed", default=7, show_default=True, type=int, help="Seed for the simulated history.")
@click.option("--force", is_flag=True,
              help="Add a demo network even though the database already has merchants (nothing is deleted).")
@click.option("--if-empty", "if_empty", is_flag=True,
              help="Do nothing, successfully, when the database already has merchants (used by `make run`).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Host for the example curl calls.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port for the example curl calls.")
def demo(members: int, merchants: int, seed: int, force: bool, if_empty: bool, host: str, port: int) -> None:
    """Create a demo network: shops, members, a year of purchases, referrals, holds.

    Refuses a database that already has merchants unless --force (which adds another
    demo network beside the data; it never deletes anything). To start over with the
    embedded default, delete coalition.db and coalition.secret.
    """
    from coalition.crypto import NetworkKeys
    from coalition.demo import LARGE_DEMO_MEMBERS, count_merchants, create_demo, create_synthetic_demo

    settings = _settings()

    async def build() -> DemoNetwork | int:
        await run_migrations(settings)
        db = Database(settings.database_url, pool_size=2)
        try:
            existing = await count_merchants(db)
            if existing and not force:
                return existing
            with _progress() as progress:
                tasks: dict[str, Any] = {}

                def report(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = progress.add_task(stage.capitalize(), total=total)
                    progress.update(tasks[stage], completed=done, total=total)

                if members >= LARGE_DEMO_MEMBERS:
                    return await create_synthetic_demo(db, settings, NetworkKeys.from_settings(settings),
                                                       members=members, merchants=merchants, seed=seed,
                                                       progress=report)
                return await create_demo(db, settings, NetworkKeys.from_settings(settings), members=members,
                                         merchants=merchants, seed=seed, progress=report)
        finally:
            await db.dispose()

    result = _run(build())
    if isinstance(result, int):
        message = (f"the database {_safe_url(settings.database_url)} already has {result} merchant(s); "
                   "the demo was not created again")
        if if_empty:
            err_console.print(message + ". Keys are shown only when they are made: `coalition keys create` "
                              "makes a new admin key.")
            return
        raise click.ClickException(message + ": use --force to add another demo network beside them")
    _print_demo(result, API_URL.format(host=host, port=port), settings.currency)


def _print_demo(network: DemoNetwork, url: str, currency: str) -> None:
    from coalition.demo import claim_request, example_requests

    counts = ", ".join(f"{n:,} {kind.lower()}" for kind, n in sorted(network.transactions.items()))
    shops = network.total_merchants or len(network.merchants)
    console.print(f"\n[bold]Demo network ready[/] in {network.elapsed_s:.1f} s: {shops} merchants, "
                  f"{network.members} members ({network.referred} referred); transactions: {counts}.")
    console.print("\n[bold]Keys[/] (shown this once; only their hashes are stored):")
    # Plain lines, never wrapped or truncated: people copy these.
    rows = [("network admin", network.admin_key, "")] + [
        (m.name, m.api_key, f"{m.category}, {m.earn_rate} point{'s' if m.earn_rate != 1 else ''} per {currency}")
        for m in network.merchants
    ]
    width = max(len(who) for who, _, _ in rows)
    for who, key, note in rows:
        console.print(f"  {who:<{width}}  {key}  {note}".rstrip(), markup=False, soft_wrap=True)
    console.print(f"\nSample loyalty ID: [bold]{network.sample_loyalty_id}[/] ({network.sample_balance:,} points)")
    if network.open_hold_id is not None:
        console.print(f"An open authorization (hold {network.open_hold_id}) waits for a capture or a void.")
    if network.campaign is not None:
        console.print(f"Status tiers BASIC / SILVER / GOLD are set; campaign {network.campaign}: "
                      "`coalition programs campaigns` shows its lift.", markup=False)
    first = network.merchants[0]
    console.print(f"\nTry it as {first.name} (after `coalition serve`; GraphiQL at {url}):")
    for description, body in example_requests(first.api_key, network.sample_loyalty_id):
        command = (f"curl -s {url} -H {shlex.quote('Authorization: Bearer ' + first.api_key)} "
                   f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}")
        console.print(f"  # {description}", markup=False)
        console.print(f"  {command}", markup=False, soft_wrap=True)
    if network.sample_claim_code is not None:
        body = claim_request(network.sample_claim_code)
        console.print(f"\nThe sample member's one-time claim code: {network.sample_claim_code} (as the customer, "
                      "without a key; it answers with the member's token, once):", markup=False)
        console.print(f"  curl -s {url} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}",
                      markup=False, soft_wrap=True)
