"""What every ``coalition`` command shares: settings, the event loop, a migrated database, output."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from coalition.config import ConfigError, Settings, load_settings
from coalition.db import Database
from coalition.errors import DomainError
from coalition.migrate import MigrationError, database_revision, head_revision
from coalition.webhooks.outbox import install

T = TypeVar("T")

APP_FACTORY = "coalition.app:create_app"
API_URL = "http://{host}:{port}/graphql"

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, DBAPIError) as exc:  # the database is unreachable, refuses us, or is not ours
        raise click.ClickException(f"database error: {type(exc).__name__}: {exc}".splitlines()[0]) from None


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` on a migrated database, disposing of the engine afterwards."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise click.ClickException(f"no database at {url.database}: run `coalition migrate` (or `coalition demo`)")
    revision = await database_revision(settings.database_url)
    if revision != head_revision():
        found = f"at revision {revision}" if revision else "not migrated"
        raise click.ClickException(
            f"the database {_safe_url(settings.database_url)} is {found}; this version needs {head_revision()}: "
            "run `coalition migrate`"
        )
    db = Database(settings.database_url, pool_size=2)
    install(db, cache_s=settings.webhook_cache_s)  # writes from the command line fill the webhooks outbox too
    try:
        return await work(db)
    finally:
        await db.dispose()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True,
    )


def _parse_datetime(value: str | None, *, naive_is_utc: bool) -> Any:
    """An ISO 8601 option value; one without a time zone is UTC, or refused."""
    import datetime as dt

    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO 8601, e.g. 2026-01-01T00:00:00Z") from None
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise click.BadParameter(f"{value!r} has no time zone: add Z or +01:00")
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _iso_time(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A POS time: without a zone it is UTC, as in the CSV."""
    return _parse_datetime(value, naive_is_utc=True)


def _aware_datetime(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A settlement instant: the zone must be said, periods end at a local midnight."""
    return _parse_datetime(value, naive_is_utc=False)
