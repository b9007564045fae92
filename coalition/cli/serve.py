"""``coalition migrate`` and ``coalition serve``: the database schema, and the API."""

from __future__ import annotations

import os

import click

from coalition.cli._common import API_URL, APP_FACTORY, _run, _safe_url, _settings, console, err_console
from coalition.migrate import migrate as run_migrations


@click.command()
def migrate() -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    settings = _settings()
    revision = _run(run_migrations(settings))
    console.print(f"database {_safe_url(settings.database_url)} is at revision {revision} (head)")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256), help="Worker processes.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--metrics-port", type=click.IntRange(1, 65535),
              help="Also serve /metrics without credentials on this port (keep it private: a firewall, "
                   "or the default --metrics-host). Without it /metrics needs an admin key or "
                   "COALITION_METRICS_TOKEN. Sets COALITION_METRICS_PORT.")
@click.option("--metrics-host", help="Interface for --metrics-port (default 127.0.0.1; COALITION_METRICS_HOST).")
def serve(host: str, port: int, workers: int, log_level: str, metrics_port: int | None,
          metrics_host: str | None) -> None:
    """Migrate the database, then serve the API (GraphQL at /graphql)."""
    from coalition import serving

    # The workers read their settings from the environment (the app factory): pass these on there.
    if metrics_port is not None:
        os.environ["COALITION_METRICS_PORT"] = str(metrics_port)
    if metrics_host is not None:
        os.environ["COALITION_METRICS_HOST"] = metrics_host
    settings = _settings()
    revision = _run(run_migrations(settings))
    err_console.print(f"database {_safe_url(settings.database_url)} at revision {revision}")
    err_console.print(f"Coalition API on {API_URL.format(host=host, port=port)} ({workers} worker(s))")
    if settings.metrics_port is not None:
        err_console.print(f"metrics on http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    # The factory reads the settings from the environment in each worker process.
    serving.serve(APP_FACTORY, host=host, port=port, workers=workers, log_level=log_level)
