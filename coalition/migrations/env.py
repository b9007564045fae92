"""Alembic's environment: async SQLAlchemy, the models' metadata, batch mode for SQLite.

Run through :mod:`coalition.migrate` (``coalition migrate``), which hands over an open
connection in ``config.attributes["connection"]``. Run by the ``alembic`` command (a
developer generating a revision), it connects to ``config.attributes["database_url"]``,
else the ini's ``sqlalchemy.url``, else ``COALITION_DATABASE_URL`` via load_settings().
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from coalition.config import load_settings
from coalition.migrate import context_options, ensure_sqlite_directory
from coalition.models import Base

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return str(url) if url else load_settings().database_url


def run_migrations_offline() -> None:
    """``alembic upgrade head --sql``: print the DDL instead of running it."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **context_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, **context_options())
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    url = database_url()
    ensure_sqlite_directory(url)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
