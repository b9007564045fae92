"""``coalition users``: people who sign in to the pages (owners, cashiers, admins)."""

from __future__ import annotations

import click

from coalition.cli._common import _run, _settings, _with_db, err_console
from coalition.db import Database


@click.group()
def users() -> None:
    """People who sign in to /console and /admin with e-mail and password."""


@users.command("add")
@click.option("--merchant", "merchant_id", type=int, help="The merchant an owner or cashier works for.")
@click.option("--email", required=True, help="The e-mail address they sign in with.")
@click.option("--role", type=click.Choice(["owner", "cashier", "admin"]), required=True)
@click.password_option("--password", prompt="Password (at least 10 characters)",
                       help="Asked for when not given (better: it stays out of the shell history).")
def users_add(merchant_id: int | None, email: str, role: str, password: str) -> None:
    """Create a user who signs in at /login."""
    from coalition.console.models import StaffRole
    from coalition.console.service import create_user

    settings = _settings()

    async def add(db: Database) -> int:
        user = await create_user(db, email=email, password=password, role=StaffRole(role.upper()),
                                 merchant_id=merchant_id)
        return user.id

    user_id = _run(_with_db(settings, add))
    err_console.print(f"created {role} {email.strip().lower()} (user {user_id}); they sign in at "
                      f"{settings.public_url}/login")
