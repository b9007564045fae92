"""``coalition worker``: the one scheduler of periodic jobs (coalition/worker.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from coalition.cli._common import _run, _settings, _with_db, console
from coalition.config import Settings
from coalition.db import Database

if TYPE_CHECKING:
    from coalition.worker import TickReport


@click.command()
@click.option("--once", is_flag=True, help="Run every job once and exit.")
@click.option("--interval-s", default=60.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between runs of the expiry, the refusal purge and the settlement check (expired "
                   "holds: every COALITION_HOLD_SWEEP_INTERVAL_S, 5 s by default).")
@click.option("--settle/--no-settle", default=True, show_default=True, help="Close settlement periods when due.")
@click.option("--analyze-every", "analyze_every_s", default=3600.0, show_default=True, type=click.FloatRange(0),
              help="Run the network analysis when the last run is this many seconds old (0: never).")
def worker(once: bool, interval_s: float, settle: bool, analyze_every_s: float) -> None:
    """Release expired holds, expire lots, close due settlement periods and analyse the network, on a schedule.

    The one scheduler of the network's periodic jobs (the API runs it too only with
    COALITION_RUN_WORKER=1). Several workers are safe: every job is safe to repeat.
    """
    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    report = _run(_with_db(settings, lambda db: run_jobs(db, settings, once=once, settle=settle,
                                                         analyze_every_s=analyze_every_s, every_s=interval_s)))
    if report is not None:
        console.print(f"released {report.holds_released:,} holds, expired {report.points_expired:,} points, "
                      f"closed batches {report.batch_ids or 'none'}, analysis run {report.analysis_run or 'none'}")
        if report.errors:
            raise click.ClickException("; ".join(report.errors))


async def run_jobs(db: Database, settings: Settings, *, once: bool = False, **schedule: Any) -> TickReport | None:
    """Run the scheduler on ``db``: every job once (``once``), or as they fall due until interrupted."""
    from coalition.crypto import NetworkKeys
    from coalition.worker import Worker

    job = Worker(db, settings, NetworkKeys.from_settings(settings), **schedule)
    try:
        if once:
            return await job.tick()
        await job.run()
        return None
    finally:
        await job.aclose()
