"""``coalition settle``: close a period into a signed batch, export it, or simulate another policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from coalition.cli._common import _aware_datetime, _progress, _run, _settings, _with_db, console, err_console
from coalition.db import Database
from coalition.i18n import LANGUAGES


@click.group(invoke_without_command=True)
@click.option("--period-end", callback=_aware_datetime,
              help="Settle entries created before this ISO date-time (default: the last period boundary).")
@click.option("--key", "idempotency_key", help="Idempotency key (default: derived from the period end).")
@click.pass_context
def settle(ctx: click.Context, period_end: Any, idempotency_key: str | None) -> None:
    """Close every unsettled activity up to --period-end into one signed batch."""
    if ctx.invoked_subcommand is not None:
        return
    from coalition.crypto import NetworkKeys
    from coalition.db import utcnow
    from coalition.settlement.policy import current_policy, latest_period_end
    from coalition.settlement.service import RunResult, batch_positions, run_settlement

    settings = _settings()

    async def run(db: Database) -> tuple[RunResult, list[Any]]:
        end = period_end
        if end is None:
            end = latest_period_end(await current_policy(db, settings), utcnow())
        with _progress() as progress:
            task = progress.add_task("Settling", total=5)

            def report(stage: str, done: int, total: int) -> None:
                progress.update(task, description=f"Settling: {stage}", completed=done, total=total)

            result = await run_settlement(db, settings, NetworkKeys.from_settings(settings), period_end=end,
                                          idempotency_key=idempotency_key or f"cli-{end.isoformat()}",
                                          progress=report)
        return result, await batch_positions(db, result.batch.id)

    result, positions = _run(_with_db(settings, run))
    batch = result.batch
    verb = "already closed" if result.replayed else "closed"
    console.print(f"batch {batch.id} (#{batch.seq}) {verb}: {batch.period_start:%Y-%m-%d %H:%M} to "
                  f"{batch.period_end:%Y-%m-%d %H:%M} UTC, entries {batch.after_entry_id + 1:,}.."
                  f"{batch.through_entry_id:,}")
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("merchant", "issued", "honored", "reversed", "expired", "net (minor)"):
        table.add_column(column, justify="right")
    for p in positions:
        table.add_row(str(p.merchant_id), f"{p.points_issued:,}", f"{p.points_honored:,}", f"{p.points_reversed:,}",
                      f"{p.points_expired:,}", f"{p.net_minor:,}")
    if positions:
        console.print(table)
    console.print(f"gross {batch.gross_minor:,}  net {batch.net_minor:,}  network income "
                  f"{batch.network_income_minor:,}  residue {batch.residue_minor}  ({settings.currency} minor units)")
    console.print(f"digest {batch.digest}")


@settle.command("export")
@click.option("--batch", "batch_id", required=True, type=int, help="The batch id.")
@click.option("--merchant", "merchant_id", type=int, help="Only this merchant's statement (default: all).")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "html", "pdf", "png"]), default="json",
              show_default=True, help="json: the signed export; csv: the positions (a batch) or the lines (a "
              "statement); html, pdf, png: the report with the matrix heat map and net positions chart.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write here (default: stdout).")
@click.option("--lang", type=click.Choice(sorted(LANGUAGES)), help="The language of an html, pdf or png report "
              "(default: COALITION_DEFAULT_LANGUAGE). The json and csv are the same in every language.")
def settle_export(batch_id: int, merchant_id: int | None, fmt: str, output: str | None, lang: str | None) -> None:
    """Export a batch, or one merchant's statement (--merchant).

    The JSON is signed: `coalition verify-statement` checks it offline.
    """
    from coalition.crypto import NetworkKeys
    from coalition.settlement.service import export_statement, export_text

    settings = _settings()
    if fmt != "json":
        from coalition.settlement.exports import export_batch

        async def render(db: Database) -> bytes:
            return (await export_batch(db, settings, NetworkKeys.from_settings(settings), batch_id=batch_id,
                                       merchant_id=merchant_id, fmt=fmt,
                                       lang=lang or settings.default_language)).content

        content = _run(_with_db(settings, render))
        if output:
            Path(output).write_bytes(content)
            err_console.print(f"wrote {output} ({len(content):,} bytes)")
        else:
            import sys

            sys.stdout.buffer.write(content)
        return

    async def run(db: Database) -> str:
        return export_text(await export_statement(db, NetworkKeys.from_settings(settings), batch_id, merchant_id))

    text = _run(_with_db(settings, run))
    if output:
        Path(output).write_text(text)
        err_console.print(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@settle.command("simulate")
@click.option("--period-end", callback=_aware_datetime, help="Simulate the next run at this instant (ISO 8601).")
@click.option("--batch", "batch_id", type=int, help="Or re-price this closed batch.")
@click.option("--point-value-minor", type=int, help="Money (minor units) per point.")
@click.option("--funding-model", help="ISSUANCE or REDEMPTION.")
@click.option("--reimbursement-rate", help="Decimal 0..1 paid to the honoring merchant, e.g. 0.80.")
@click.option("--breakage-share", help="Decimal 0..1 of expired points' funding returned to the issuer.")
def settle_simulate(period_end: Any, batch_id: int | None, point_value_minor: int | None, funding_model: str | None,
                    reimbursement_rate: str | None, breakage_share: str | None) -> None:
    """What-if: each merchant's net position under a changed policy beside the real one. Writes nothing."""
    from coalition.money import format_money
    from coalition.settlement.whatif import Simulation, simulate_settlement

    settings = _settings()

    async def run(db: Database) -> Simulation:
        return await simulate_settlement(db, settings, period_end=period_end, batch_id=batch_id,
                                         point_value_minor=point_value_minor, funding_model=funding_model,
                                         reimbursement_rate=reimbursement_rate, breakage_share=breakage_share)

    simulation = _run(_with_db(settings, run))
    p = simulation.policy

    def money(minor: int) -> str:
        return format_money(minor, settings.currency_exponent)

    console.print(f"what-if {simulation.period_start:%Y-%m-%d %H:%M} to {simulation.period_end:%Y-%m-%d %H:%M} UTC: "
                  f"{p.funding_model.value}, point value {p.point_value_minor}, reimbursement rate "
                  f"{p.reimbursement_rate}, breakage share {p.breakage_share} (nothing written)")
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("merchant", "net now", "simulated", "change"):
        table.add_column(column, justify="right")
    for change in simulation.changes:
        table.add_row(str(change.merchant_id), money(change.current.net_minor), money(change.simulated.net_minor),
                      money(change.delta_minor))
    table.add_row("network income", money(simulation.current.netting.network_income_minor),
                  money(simulation.simulated.netting.network_income_minor),
                  money(simulation.simulated.netting.network_income_minor
                        - simulation.current.netting.network_income_minor), style="bold")
    console.print(table)
