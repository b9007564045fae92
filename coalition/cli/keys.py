"""``coalition keys``: admin and merchant API keys."""

from __future__ import annotations

import click
from rich.table import Table
from sqlalchemy import select

from coalition.cli._common import _run, _settings, _with_db, console, err_console
from coalition.db import Database


@click.group()
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
