"""The ``coalition`` command (also ``python -m coalition``).

``serve``, ``migrate`` and ``demo`` create or upgrade the database; the other commands
expect a migrated one and say so. Settings come from the environment
(:func:`coalition.config.load_settings`). API keys appear on the terminal once, when
they are made (``demo``, ``keys create``), and never in a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from coalition import __version__
from coalition.config import ConfigError, Settings, load_settings
from coalition.db import Database
from coalition.errors import DomainError
from coalition.migrate import MigrationError, database_revision, head_revision
from coalition.migrate import migrate as run_migrations

if TYPE_CHECKING:
    from coalition.demo import DemoNetwork

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
    try:
        return await work(db)
    finally:
        await db.dispose()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="coalition")
def cli() -> None:
    """Coalition: a coalition rewards network for small businesses.

    Configuration comes from COALITION_* environment variables; with none the
    database is ./coalition.db (SQLite) and the master secret ./coalition.secret.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="coalition")


# ---------------------------------------------------------------- database


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema (alembic upgrade head)."""
    settings = _settings()
    revision = _run(run_migrations(settings))
    console.print(f"database {_safe_url(settings.database_url)} is at revision {revision} (head)")


@cli.command()
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
    import uvicorn

    from coalition.serving import NoDelayHttpProtocol

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
    # TCP_NODELAY on every connection: uvicorn leaves it off when it binds the socket (workers > 1).
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level,
                http=NoDelayHttpProtocol)


@cli.command()
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


# ---------------------------------------------------------------- keys


@cli.group()
def keys() -> None:
    """Admin and merchant API keys."""


@keys.command("create")
@click.option("--merchant", "merchant_id", type=int, help="Make a key for this merchant (default: an admin key).")
@click.option("--label", help="A note to recognise the key by in `keys list`.")
def keys_create(merchant_id: int | None, label: str | None) -> None:
    """Create an API key and print it (on stdout, once)."""
    from coalition.auth.models import Role
    from coalition.auth.service import create_api_key
    from coalition.partners.models import Merchant

    settings = _settings()

    async def create(db: Database) -> str:
        async with db.sessions.begin() as session:
            if merchant_id is not None:
                found = (await session.execute(select(Merchant.id).where(Merchant.id == merchant_id))).first()
                if found is None:
                    raise click.ClickException(f"no merchant {merchant_id}: `coalition keys list --all` shows them")
            role = Role.ADMIN if merchant_id is None else Role.MERCHANT
            return await create_api_key(session, role, merchant_id=merchant_id, label=label)

    key = _run(_with_db(settings, create))
    who = "admin key" if merchant_id is None else f"key for merchant {merchant_id}"
    err_console.print(f"created {who} {key[:10]}… (shown this once; store it now)")
    click.echo(key)


@keys.command("revoke")
@click.argument("prefix_or_key")
def keys_revoke(prefix_or_key: str) -> None:
    """Revoke a key, given whole or by the prefix `keys list` shows."""
    from coalition.auth.service import revoke_api_key

    settings = _settings()

    async def revoke(db: Database) -> int:
        return await revoke_api_key(db, prefix_or_key.strip())

    count = _run(_with_db(settings, revoke))
    console.print(f"revoked {count} key{'s' if count != 1 else ''}")


@keys.command("list")
@click.option("--merchant", "merchant_id", type=int, help="This merchant's keys instead of the admin keys.")
@click.option("--all", "show_all", is_flag=True, help="Every key, admin and merchant.")
@click.option("--revoked/--no-revoked", default=True, show_default=True, help="Include revoked keys.")
def keys_list(merchant_id: int | None, show_all: bool, revoked: bool) -> None:
    """List API keys (admin keys by default). Keys show by prefix only."""
    from coalition.auth.models import ApiKey, Role

    settings = _settings()

    async def fetch(db: Database) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.id)
        if merchant_id is not None:
            query = query.where(ApiKey.merchant_id == merchant_id)
        elif not show_all:
            query = query.where(ApiKey.role == Role.ADMIN)
        if not revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        async with db.session() as session:
            return list((await session.execute(query)).scalars())

    rows = _run(_with_db(settings, fetch))
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("id", "prefix", "role", "merchant", "label", "created", "revoked"):
        table.add_column(column, no_wrap=column != "label")
    for key in rows:
        table.add_row(str(key.id), key.prefix + "…", key.role.value, str(key.merchant_id or ""), key.label or "",
                      f"{key.created_at:%Y-%m-%d %H:%M}", f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "")
    if rows:
        console.print(table)
    else:
        console.print("no keys" + ("" if show_all or merchant_id else " (admin keys; --all shows merchant keys)"))


# ---------------------------------------------------------------- member access


@cli.group()
def members() -> None:
    """Member access: claim codes and tokens (the admin side of issueMemberClaimCode / revokeMemberTokens)."""


@members.command("claim-code")
@click.argument("loyalty_id")
def members_claim_code(loyalty_id: str) -> None:
    """For a member who lost access: revoke its tokens and print a new one-time claim code (stdout).

    Hand the code to the customer only after verifying who they are; they exchange it for a
    token with the claimMemberAccess mutation (or the claim link).
    """
    from coalition.members.credentials import claim_url, reissue_claim_code
    from coalition.members.service import find_member

    settings = _settings()

    async def issue(db: Database) -> tuple[str, str, Any]:
        member = await find_member(db, loyalty_id)
        _, claim = await reissue_claim_code(db, member.id, ttl_s=settings.member_claim_ttl_s)
        return member.loyalty_id, claim.code, claim.expires_at

    lid, code, expires_at = _run(_with_db(settings, issue))
    err_console.print(f"member {lid}: earlier tokens and codes revoked; this code works once, until "
                      f"{expires_at:%Y-%m-%d %H:%M} UTC: {claim_url(settings.public_url, code)}")
    click.echo(code)


@members.command("revoke-tokens")
@click.argument("loyalty_id")
def members_revoke_tokens(loyalty_id: str) -> None:
    """Sign a member out everywhere: every token and unused claim code stops working."""
    from coalition.members.credentials import revoke_member_credentials
    from coalition.members.service import find_member

    settings = _settings()

    async def revoke(db: Database) -> int:
        return await revoke_member_credentials(db, (await find_member(db, loyalty_id)).id)

    count = _run(_with_db(settings, revoke))
    console.print(f"revoked {count} credential{'s' if count != 1 else ''} of member {loyalty_id.strip().upper()}")


# ---------------------------------------------------------------- ledger jobs


@cli.command()
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


@cli.command("release-holds")
def release_holds() -> None:
    """Void authorizations past their expiry (the API server also does this every few seconds)."""
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


@cli.command()
@click.option("--map", "map_file", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the network map here (.png or .svg, by the file's suffix).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON on stdout.")
@click.option("--no-map", "no_map", is_flag=True, help="Skip drawing the map (faster on large networks).")
@click.option("--every", "every_s", type=click.FloatRange(min=1), default=None,
              help="Keep running: analyse every this many seconds (a worker; with Redis, one run per interval "
                   "across all workers).")
def analyze(map_file: Path | None, as_json: bool, no_map: bool, every_s: float | None) -> None:
    """Analyse the network (referrals, partners, fraud, segments) and store the results for the API."""
    from coalition.network.jobs import RunReport, analyze_forever, run_analysis
    from coalition.network.store import InsightStore

    settings = _settings()
    if every_s is not None:
        scheduled = settings.with_overrides(analyze_interval_s=every_s)

        async def forever(db: Database) -> None:
            store = InsightStore(db, settings.redis_url, settings.insights_cache_s)
            err_console.print(f"analysing every {every_s:g} s; stop with Ctrl-C")
            try:
                await analyze_forever(db, scheduled, store, first_now=True)
            finally:
                await store.aclose()

        with contextlib.suppress(KeyboardInterrupt):
            _run(_with_db(settings, forever))
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


@cli.command()
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


# ---------------------------------------------------------------- reconciliation


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


@cli.command()
@click.option("--merchant", "merchant_id", required=True, type=int, help="Whose ledger to compare the file with.")
@click.argument("file", type=click.File("rb"))
@click.option("--from", "start", callback=_iso_time, help="Window start, ISO 8601 (default: the file's first line).")
@click.option("--to", "end", callback=_iso_time, help="Window end, exclusive (default: after the file's last line).")
@click.option("--tolerance-s", default=300, show_default=True, type=click.IntRange(0, 86_400),
              help="How far apart POS and ledger times may be.")
@click.option("--max-lines", default=200, show_default=True, type=click.IntRange(0),
              help="Lines shown per table (the totals always count them all).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def reconcile(merchant_id: int, file: Any, start: Any, end: Any, tolerance_s: int, max_lines: int,
              as_json: bool) -> None:
    """Compare a merchant's POS export (CSV, FILE or - for stdin) with its ledger. Writes nothing.

    The CSV has a header row naming reference, time (ISO 8601), amount_minor (integer
    minor units) or amount (decimal), and points (+ earned, - redeemed), in any order.
    """
    import datetime as dt

    from coalition.money import format_money
    from coalition.settlement.pos_csv import MAX_CSV_BYTES
    from coalition.settlement.reconcile import Status, reconcile_pos_export, report_as_dict

    settings = _settings()
    data = file.read(MAX_CSV_BYTES + 1)  # one byte over is enough to refuse it

    async def run(db: Database) -> Any:
        return await reconcile_pos_export(db, merchant_id=merchant_id, data=data, start=start, end=end,
                                          currency_exponent=settings.currency_exponent,
                                          tolerance=dt.timedelta(seconds=tolerance_s))

    report = _run(_with_db(settings, run))
    if as_json:
        click.echo(json.dumps(report_as_dict(report), indent=2))
        return
    window = f"{report.start:%Y-%m-%d %H:%M:%S} to {report.end:%Y-%m-%d %H:%M:%S} UTC" if report.start else "empty"
    console.print(f"merchant {merchant_id}: {report.rows_read:,} line(s) read, window {window}")

    def money(minor: int | None) -> str:
        return "" if minor is None else format_money(minor, settings.currency_exponent)

    def when(moment: dt.datetime | None) -> str:
        return "" if moment is None else f"{moment:%Y-%m-%d %H:%M}"

    sections = [
        (Status.MISMATCHED, "Mismatched", ("line", "reference", "differs", "in the POS file", "in Coalition")),
        (Status.MISSING_IN_COALITION, "Missing in Coalition", ("line", "reference", "time", "points", "amount")),
        (Status.MISSING_IN_POS, "Missing in the POS file", ("transaction", "reference", "time", "points",
                                                             "amount")),
    ]
    for status, title, columns in sections:
        lines = report.by_status(status)
        if not lines:
            continue
        table = Table(title=f"{title} ({len(lines):,})", title_justify="left", header_style="bold", box=None,
                      pad_edge=False)
        for column in columns:
            numeric = column.endswith(("points", "amount"))
            table.add_column(column, justify="right" if numeric else "left", no_wrap=not numeric)
        for line in lines[:max_lines]:
            row, entry = line.row, line.entry
            reference = (row.reference if row else None) or (entry.reference if entry else None) or ""
            if status == Status.MISMATCHED and row and entry:
                pos = {"points": f"{row.points} pts", "amount": money(row.amount_minor), "time": when(row.time)}
                ours = {"points": f"{entry.points} pts", "amount": money(entry.amount_minor), "time": when(entry.time)}
                table.add_row(str(row.line), reference, ", ".join(line.differences),
                              "; ".join(pos[d] for d in line.differences), "; ".join(ours[d] for d in line.differences))
            elif row:
                table.add_row(str(row.line), reference, when(row.time), str(row.points), money(row.amount_minor))
            elif entry:
                label = f"{entry.kind.value} {entry.entry_id}" + (" (reversed)" if entry.reversed else "")
                table.add_row(label, reference, when(entry.time), str(entry.points), money(entry.amount_minor))
        console.print(table)
        if len(lines) > max_lines:
            console.print(f"… and {len(lines) - max_lines:,} more (--max-lines, or --json for all)")
    totals = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("", "lines", "POS points", "POS amount", "ledger points", "ledger amount"):
        totals.add_column(column, justify="left" if not column else "right", no_wrap=not column)
    for status, label in zip(Status, ("matched", "mismatched", "missing in Coalition", "missing in POS"), strict=True):
        t = report.totals(status)
        totals.add_row(label, f"{t.count:,}", f"{t.pos_points:,}", money(t.pos_amount_minor), f"{t.ledger_points:,}",
                       money(t.ledger_amount_minor))
    console.print(totals)
    for error in report.row_errors:
        err_console.print(f"✗ {error.message} ({error.code})", markup=False, style="red")
    if report.row_error_count > len(report.row_errors):
        err_console.print(f"… and {report.row_error_count - len(report.row_errors):,} more unreadable lines")


# ---------------------------------------------------------------- settlement


def _aware_datetime(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A settlement instant: the zone must be said, periods end at a local midnight."""
    return _parse_datetime(value, naive_is_utc=False)


@cli.group(invoke_without_command=True)
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
def settle_export(batch_id: int, merchant_id: int | None, fmt: str, output: str | None) -> None:
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
                                       merchant_id=merchant_id, fmt=fmt)).content

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


@cli.command("verify-statement")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", help="The network's public key (GraphQL network.publicKey) to pin; "
                                   "without it the key inside the file is trusted.")
@click.option("--merchant", "merchant_id", type=int,
              help="Your merchant id: the statement must be yours, not another merchant's.")
def verify_statement(file: str, public_key: str | None, merchant_id: int | None) -> None:
    """Verify an exported statement offline (no database).

    Recomputes your salted leaf from your statement and its nonce, follows the inclusion
    proof to the Merkle root, and checks that the batch statement holding the root hashes to
    the digest and that the Ed25519 signature holds. Batches closed before salting (version 1)
    are checked by their plain SHA-256 as before.
    """
    from coalition.settlement.statements import VerificationError, verify_export

    try:
        verified = verify_export(json.loads(Path(file).read_text()), public_key, merchant_id=merchant_id)
    except (VerificationError, ValueError) as exc:
        raise click.ClickException(f"statement does NOT verify: {exc}") from None
    batch = verified.batch
    rule = ("salted Merkle leaf under the signed root" if verified.version == 2
            else "version 1: plain SHA-256 listed in the signed batch")
    console.print(f"statement verifies: batch #{batch['seq']} {batch['periodStart']} .. {batch['periodEnd']}, "
                  f"digest {verified.digest} ({rule})")
    for statement in verified.merchants:
        console.print(f"  merchant {statement['merchantId']}: net {statement['figures']['netMinor']:,} "
                      f"{statement['currency']} minor units, {len(statement['lines'])} lines")
    if not verified.public_key_pinned:
        err_console.print("note: the key inside the file was trusted; pass --public-key to pin the network's key")


@cli.group()
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
def policy_set(**changes: Any) -> None:
    """Append a policy version; options left out keep their current value."""
    from coalition.settlement.policy import set_policy

    settings = _settings()

    async def run(db: Database) -> Any:
        return await set_policy(db, settings, **changes)

    _print_policy(_run(_with_db(settings, run)))


@cli.command()
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@click.option("--interval-s", default=60.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between ticks.")
@click.option("--settle/--no-settle", default=True, show_default=True, help="Close settlement periods when due.")
@click.option("--analyze-every", "analyze_every_s", default=3600.0, show_default=True, type=click.FloatRange(0),
              help="Run the network analysis when the last run is this many seconds old (0: never).")
def worker(once: bool, interval_s: float, settle: bool, analyze_every_s: float) -> None:
    """Release expired holds, expire lots, close due settlement periods and analyse the network, on a schedule."""
    import logging

    from coalition.crypto import NetworkKeys
    from coalition.worker import Worker

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def run(db: Database) -> Any:
        job = Worker(db, settings, NetworkKeys.from_settings(settings), settle=settle, analyze_every_s=analyze_every_s)
        try:
            if once:
                return await job.tick()
            await job.run(interval_s)
            return None
        finally:
            await job.aclose()

    report = _run(_with_db(settings, run))
    if report is not None:
        console.print(f"released {report.holds_released:,} holds, expired {report.points_expired:,} points, "
                      f"closed batches {report.batch_ids or 'none'}, analysis run {report.analysis_run or 'none'}")
        if report.errors:
            raise click.ClickException("; ".join(report.errors))
