"""``coalition import`` and ``coalition export``: members and history in and out, as CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from coalition.cli._common import _progress, _run, _settings, _with_db, console, err_console
from coalition.db import Database


@click.group("import")
def import_group() -> None:
    """Bring customers and balances over from another loyalty program."""


@import_group.command("members")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--merchant", "merchant_id", required=True, type=int, help="The merchant the customers belong to.")
@click.option("--dry-run", is_flag=True, help="Validate the whole file against the database; write nothing.")
@click.option("--errors", "errors_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the error file (CSV: line,column,code,message). Default: FILE.errors.csv.")
def import_members_command(file: Path, merchant_id: int, dry_run: bool, errors_file: Path | None) -> None:
    """Import members (contact data, opening balances) and dated history from FILE (CSV).

    The whole file is validated first; with any error nothing is written and the errors go
    to the error file by line number. Running the same file again changes nothing. The
    columns are described in coalition/portability/reader.py and the README.
    """
    from coalition.crypto import NetworkKeys
    from coalition.portability.service import import_members, limits_from, write_error_file

    settings = _settings()
    keys = NetworkKeys.from_settings(settings)

    async def work(db: Database) -> Any:
        with _progress() as progress:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            return await import_members(db, keys, merchant_id=merchant_id, path=file, limits=limits_from(settings),
                                        expiry_days=settings.points_expiry_days, dry_run=dry_run, progress=report)

    result = _run(_with_db(settings, work))
    scan = result.scan
    if result.status == "INVALID":
        target = errors_file or file.with_name(file.name + ".errors.csv")
        write_error_file(result.errors, target)
        more = f" (the first {len(result.errors):,} are listed)" if result.error_count > len(result.errors) else ""
        for error in result.errors[:10]:
            err_console.print(f"line {error.line}: {error.column or '-'}: {error.code}: {error.message}")
        raise click.ClickException(f"{result.error_count:,} error(s){more}, nothing was imported; see {target}")
    summary = (f"{scan.members:,} members, {scan.earns:,} history rows, "
               f"{scan.opening_points + scan.history_points:,} points")
    if result.status == "DRY_RUN":
        console.print(f"valid: {summary} would be imported ({scan.postings:,} postings); nothing was written")
    elif result.status == "ALREADY_IMPORTED":
        console.print(f"this file was already imported for merchant {merchant_id}: nothing changed")
    else:
        rate = result.postings_created / result.elapsed_s if result.elapsed_s else 0
        console.print(f"imported {summary}: {result.members_created:,} members, {result.entries_created:,} entries, "
                      f"{result.postings_created:,} postings in {result.elapsed_s:.1f} s ({rate:,.0f} postings/s)")


@click.command("export")
@click.argument("what", type=click.Choice(["members", "transactions"]))
@click.option("--merchant", "merchant_id", type=int, help="This merchant's own (default: the whole network).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: stdout).")
def export_command(what: str, merchant_id: int | None, output: Path | None) -> None:
    """Export members or transactions as CSV (streamed; no contact data)."""
    from coalition.crypto import NetworkKeys
    from coalition.portability.export import export_members, export_transactions

    settings = _settings()
    keys = NetworkKeys.from_settings(settings)

    async def work(db: Database) -> int:
        stream = (export_members(db, merchant_id) if what == "members"
                  else export_transactions(db, merchant_id, keys.global_ids.encode))
        lines = -1
        with (output.open("w", encoding="utf-8", newline="") if output else _stdout()) as f:
            async for chunk in stream:
                f.write(chunk)
                lines += chunk.count("\n")
        return lines

    count = _run(_with_db(settings, work))
    err_console.print(f"{count:,} {what} exported")


class _stdout:
    def __enter__(self) -> Any:
        return sys.stdout

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
