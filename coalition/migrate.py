"""Alembic, driven from code: ``coalition migrate``, ``coalition serve`` and the tests use it.

The migration scripts live inside the package (``coalition/migrations``), so an installed
Coalition migrates its database without an ``alembic.ini`` or a source checkout. The
database URL travels in ``Config.attributes`` rather than the ini's ``sqlalchemy.url``,
whose ``%`` interpolation would mangle passwords.

A database whose tables were made by ``Base.metadata.create_all`` (no ``alembic_version``
table) is adopted: if its schema matches the models it is stamped at head, otherwise
:class:`MigrationError` says what differs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from coalition.config import Settings
from coalition.db import UTCDateTime, create_private_sqlite_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class MigrationError(RuntimeError):
    """The database cannot be brought to the current schema without a person deciding how."""


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (and ``database_url``, if given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "coalition/migrations/versions has no revision"
    return head


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations must not import application types that may change later: a UTCDateTime
    # column is a timezone-aware DateTime to the database.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def context_options() -> dict[str, Any]:
    """``context.configure`` options shared by env.py and :func:`schema_differences`."""
    return {
        # SQLite cannot ALTER most things: batch mode copies the table, and works on PostgreSQL too.
        "render_as_batch": True,
        "compare_type": True,
        "compare_server_default": False,
        "render_item": _render_item,
    }


def schema_differences(connection: Connection) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match the models."""
    from coalition.models import Base

    context = MigrationContext.configure(connection, opts=context_options())
    return list(compare_metadata(context, Base.metadata))


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def ensure_sqlite_directory(database_url: str) -> None:
    """SQLite creates the file but not its folder: make the folder, and the file, private (0600)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        create_private_sqlite_file(database_url)


def _upgrade_on(connection: Connection, config: Config, revision: str) -> str | None:
    from coalition.models import Base

    tables = set(inspect(connection).get_table_names())
    config.attributes["connection"] = connection
    if "alembic_version" not in tables and tables & set(Base.metadata.tables):
        differences = schema_differences(connection)
        if differences:
            listed = "\n  ".join(repr(d) for d in differences[:20])
            raise MigrationError(
                "the database has Coalition tables but no migration history, and they differ from the models:\n  "
                f"{listed}\nmigrate it by hand, or start from an empty database"
            )
        command.stamp(config, "head")
    else:
        command.upgrade(config, revision)
    return current_revision(connection)


async def migrate_url(database_url: str, revision: str = "head") -> str | None:
    """Upgrade the database at ``database_url``; returns the revision it is at afterwards."""
    ensure_sqlite_directory(database_url)
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(_upgrade_on, alembic_config(database_url), revision)
    finally:
        await engine.dispose()


async def migrate(settings: Settings, revision: str = "head") -> str | None:
    """Create or upgrade the configured database (``alembic upgrade head``)."""
    return await migrate_url(settings.database_url, revision)


def upgrade(database_url: str, revision: str = "head") -> str | None:
    """Synchronous :func:`migrate_url`, for callers with no event loop running (the CLI)."""
    return asyncio.run(migrate_url(database_url, revision))


async def database_revision(database_url: str) -> str | None:
    """The revision the database is at (None: never migrated, or no database yet)."""
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(current_revision)
    finally:
        await engine.dispose()
