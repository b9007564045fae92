"""``coalition expire``, ``release-holds`` and ``check``: the ledger's jobs run by hand, and its invariants."""

from __future__ import annotations

import click
from sqlalchemy import select

from coalition.cli._common import _progress, _run, _settings, _with_db, console, err_console
from coalition.db import Database


@click.command()
def expire() -> None:
    """Expire points whose lots are past their date (run it daily)."""
    from coalition.ledger.service import Ledger

    settings = _settings()

    async def run(db: Database) -> tuple[int, int]:
        with _progress() as progress:
            task = progress.add_task("Expiring", total=None)

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return await Ledger(db, settings).expire_lots(progress=report)

    members, points = _run(_with_db(settings, run))
    console.print(f"expired {points:,} points from {members:,} member{'s' if members != 1 else ''}")


@click.command("release-holds")
def release_holds() -> None:
    """Void authorizations past their expiry (`coalition worker` also does this every few seconds)."""
    from coalition.ledger.service import Ledger

    settings = _settings()
    batch = 1000

    async def run(db: Database) -> int:
        ledger = Ledger(db, settings)
        total = 0
        with _progress() as progress:
            task = progress.add_task("Releasing holds", total=None)
            while True:
                released = await ledger.release_expired_holds(limit=batch)
                total += released
                progress.update(task, completed=total)
                if released < batch:
                    return total

    count = _run(_with_db(settings, run))
    console.print(f"released {count:,} expired hold{'s' if count != 1 else ''}")


@click.command()
def check() -> None:
    """Verify the ledger's invariants; exit status 1 if any is violated."""
    from sqlalchemy import func

    from coalition.ledger.invariants import ledger_violations
    from coalition.ledger.models import Entry
    from coalition.members.models import Member

    settings = _settings()

    async def run(db: Database) -> tuple[list[str], int, int]:
        async with db.read() as conn:
            problems = await ledger_violations(conn)
            entries = (await conn.execute(select(func.count()).select_from(Entry))).scalar_one()
            members = (await conn.execute(select(func.count()).select_from(Member))).scalar_one()
        return problems, int(entries), int(members)

    problems, entries, members = _run(_with_db(settings, run))
    if problems:
        for problem in problems:
            err_console.print(f"✗ {problem}", markup=False, style="red")
        raise click.ClickException(f"the ledger has {len(problems)} problem(s)")
    console.print(f"ledger consistent: {entries:,} transactions, {members:,} members")
