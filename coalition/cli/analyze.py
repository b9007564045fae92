"""``coalition analyze``: the network analysis, once (or on the scheduler, ``--every``)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from coalition.cli._common import _progress, _run, _settings, _with_db, console, err_console
from coalition.cli.worker import run_jobs
from coalition.db import Database


@click.command()
@click.option("--map", "map_file", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the network map here (.png or .svg, by the file's suffix).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON on stdout.")
@click.option("--no-map", "no_map", is_flag=True, help="Skip drawing the map (faster on large networks).")
@click.option("--every", "every_s", type=click.FloatRange(min=1), default=None,
              help="Keep running: analyse every this many seconds (`coalition worker` running the analysis "
                   "alone; with Redis, one run per interval across all workers).")
def analyze(map_file: Path | None, as_json: bool, no_map: bool, every_s: float | None) -> None:
    """Analyse the network (referrals, partners, fraud, segments) and store the results for the API."""
    from coalition.network.jobs import RunReport, run_analysis

    settings = _settings()
    if every_s is not None:
        # Not a schedule of its own: the one scheduler (coalition/worker.py) with the analysis job alone.
        err_console.print(f"analysing every {every_s:g} s; stop with Ctrl-C")
        with contextlib.suppress(KeyboardInterrupt):
            _run(_with_db(settings, lambda db: run_jobs(db, settings, only={"analysis"}, analyze_every_s=every_s)))
        return
    if map_file is not None and map_file.suffix.lower() not in (".png", ".svg"):
        raise click.ClickException(f"--map {map_file}: the file must end in .png or .svg")
    if map_file is not None and no_map:
        raise click.ClickException("--map and --no-map contradict each other")

    async def run(db: Database) -> RunReport:
        with _progress() as progress:
            task = progress.add_task("Analysing", total=None)

            def report(stage: str, done: int, total: int) -> None:
                progress.update(task, description=f"Analysing: {stage.replace('_', ' ')}", completed=done,
                                total=total)

            return await run_analysis(db, settings, progress=report, draw_map=not no_map)

    result = _run(_with_db(settings, run))
    if map_file is not None:
        data = result.map_svg if map_file.suffix.lower() == ".svg" else result.map_png
        assert data is not None
        map_file.write_bytes(data)
    summary = {"run_id": result.run_id, "started_at": result.started_at.isoformat(),
               "computed_at": result.computed_at.isoformat(), **result.summary}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    seconds = (result.computed_at - result.started_at).total_seconds()
    console.print(f"analysis run {result.run_id} stored in {seconds:.1f} s: {result.summary['members']:,} members, "
                  f"{result.summary['merchants']:,} merchants, {result.summary['purchases']:,} purchases, "
                  f"{result.summary['referrals']:,} referrals; {result.summary['communities']} merchant "
                  f"communities, {result.summary['fraud_alerts']} fraud alert(s)")
    if map_file is not None:
        console.print(f"network map written to {map_file}")
