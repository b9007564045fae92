"""The Alembic migrations build exactly the schema the models describe.

Run on a fresh SQLite file, and on PostgreSQL when ``COALITION_TEST_DATABASE_URL`` is set,
in a scratch database of its own (``coalition_migrations_test``) so that the shared test
database's tables are left alone. Alembic's ``compare_metadata`` does not look at CHECK
constraints or partial-index predicates, so the schema is also compared, as reflected,
with one made by ``Base.metadata.create_all``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from coalition.migrate import (
    MigrationError,
    alembic_config,
    database_revision,
    head_revision,
    migrate_url,
    schema_differences,
)
from coalition.models import Base

PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
SCRATCH_DATABASE = "coalition_migrations_test"


async def _recreate_pg_database(url: str, name: str) -> str:
    import asyncpg  # type: ignore[import-untyped]

    server = make_url(url)
    conn = await asyncpg.connect(host=server.host, port=server.port or 5432, user=server.username,
                                 password=server.password, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL migrations: set COALITION_TEST_DATABASE_URL (make test-services) to run them")
    yield asyncio.run(_recreate_pg_database(PG_URL, SCRATCH_DATABASE))


async def _on(url: str, work: Any, *, begin: bool = False) -> Any:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        if begin:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        async with engine.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _reflected(connection: Connection) -> dict[str, Any]:
    """The schema as the database reports it, in a form two databases can be compared by."""

    def plain(items: list[Any]) -> list[str]:
        return sorted(repr({k: (str(v) if k in {"sqltext", "dialect_options"} else v) for k, v in dict(i).items()})
                      for i in items)

    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        schema[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "primary key": inspector.get_pk_constraint(table),
            "foreign keys": plain(inspector.get_foreign_keys(table)),
            "unique": plain(inspector.get_unique_constraints(table)),
            "checks": plain(inspector.get_check_constraints(table)),
            "indexes": plain([{**i, "dialect_options": {k: str(v) for k, v in i.get("dialect_options", {}).items()}}
                              for i in inspector.get_indexes(table)]),
        }
    return schema


def _drop_everything(connection: Connection) -> None:
    Base.metadata.drop_all(connection)
    connection.execute(text("DROP TABLE IF EXISTS alembic_version"))


def test_upgrade_head_builds_the_models_schema(database_url: str) -> None:
    revision = asyncio.run(migrate_url(database_url))

    assert revision == head_revision()
    assert asyncio.run(_on(database_url, schema_differences)) == []
    migrated = asyncio.run(_on(database_url, _reflected))
    asyncio.run(_on(database_url, _drop_everything, begin=True))
    asyncio.run(_on(database_url, Base.metadata.create_all, begin=True))
    created = asyncio.run(_on(database_url, _reflected))
    assert set(migrated) == set(Base.metadata.tables)
    for table in created:
        assert migrated[table] == created[table], table
    # The things autogenerate is known to drop silently are really there.
    assert any("ck_members_balance_non_negative" in c for c in migrated["members"]["checks"])
    assert any("ck_lots_remaining_non_negative" in c for c in migrated["lots"]["checks"])
    assert any("ix_lots_open" in i and "remaining > 0" in i for i in migrated["lots"]["indexes"])
    assert any("ix_holds_open" in i and "AUTHORIZED" in i for i in migrated["holds"]["indexes"])


def test_upgrade_twice_changes_nothing(database_url: str) -> None:
    asyncio.run(migrate_url(database_url))
    before = asyncio.run(_on(database_url, _reflected))

    assert asyncio.run(migrate_url(database_url)) == head_revision()
    assert asyncio.run(_on(database_url, _reflected)) == before


def test_a_create_all_database_is_adopted_at_head(database_url: str) -> None:
    asyncio.run(_on(database_url, Base.metadata.create_all, begin=True))
    assert asyncio.run(database_revision(database_url)) is None

    assert asyncio.run(migrate_url(database_url)) == head_revision()
    assert asyncio.run(database_revision(database_url)) == head_revision()


def test_an_unversioned_database_that_differs_is_refused(database_url: str) -> None:
    asyncio.run(_on(database_url, Base.metadata.create_all, begin=True))
    asyncio.run(_on(database_url, lambda c: c.execute(text("DROP INDEX ix_entries_member_id_id")), begin=True))

    with pytest.raises(MigrationError, match="ix_entries_member_id_id"):
        asyncio.run(migrate_url(database_url))


def test_downgrade_to_base_and_up_again_with_the_alembic_api(database_url: str) -> None:
    """The env.py path the ``alembic`` command takes (its own engine, no shared connection)."""
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")

    tables = asyncio.run(_on(database_url, lambda c: set(inspect(c).get_table_names())))
    assert tables <= {"alembic_version"}
    command.upgrade(config, "head")
    assert asyncio.run(database_revision(database_url)) == head_revision()
    assert asyncio.run(_on(database_url, schema_differences)) == []


def test_sqlite_folder_is_created(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a' / 'b' / 'coalition.db'}"

    assert asyncio.run(migrate_url(url)) == head_revision()
    assert (tmp_path / "a" / "b" / "coalition.db").exists()


def _lines_of(connection: Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in connection.execute(text(
        "SELECT batch_id, line_no, points FROM settlement_lines ORDER BY batch_id, line_no"))]


def test_settlement_lines_keep_their_order_through_0005_and_back(database_url: str) -> None:
    """0005 numbers each batch's existing lines by their old id; its downgrade restores ids."""
    config = alembic_config(database_url)
    command.upgrade(config, "0004_contact_fingerprints")

    def seed(connection: Connection) -> None:
        for batch in (1, 2):
            connection.execute(text(
                "INSERT INTO settlement_batches (id, seq, idempotency_key, period_start, period_end, after_entry_id,"
                " through_entry_id, funding_models, gross_minor, net_minor, bilateral_minor, network_income_minor,"
                " residue_minor, statement, digest, signature, created_at) VALUES (:b, :b, :k, :t, :t, 0, 0,"
                " 'ISSUANCE', 0, 0, 0, 0, '0', '{}', 'd', 's', :t)"),
                {"b": batch, "k": f"key-{batch}", "t": dt.datetime(2026, 11, 1)})
        # Ids interleave the two batches; points tell the lines apart.
        for line_id, batch, points in ((10, 2, 201), (11, 1, 101), (12, 2, 202), (13, 1, 102), (14, 2, 203)):
            connection.execute(text(
                "INSERT INTO settlement_lines (id, batch_id, kind, points, issuer_minor, redeemer_minor, exact_minor)"
                " VALUES (:i, :b, 'HONORED', :p, 0, 0, '0')"), {"i": line_id, "b": batch, "p": points})

    asyncio.run(_on(database_url, seed, begin=True))
    command.upgrade(config, "head")
    expected = [(1, 1, 101), (1, 2, 102), (2, 1, 201), (2, 2, 202), (2, 3, 203)]
    assert asyncio.run(_on(database_url, _lines_of)) == expected

    command.downgrade(config, "0004_contact_fingerprints")

    def add_line(connection: Connection) -> list[tuple[Any, ...]]:  # ids number themselves again
        connection.execute(text("INSERT INTO settlement_lines (batch_id, kind, points, issuer_minor, redeemer_minor,"
                                " exact_minor) VALUES (1, 'HONORED', 103, 0, 0, '0')"))
        return [tuple(r) for r in connection.execute(text("SELECT id, batch_id, points FROM settlement_lines"
                                                          " ORDER BY id"))]

    assert asyncio.run(_on(database_url, add_line, begin=True)) == [
        (1, 1, 101), (2, 1, 102), (3, 2, 201), (4, 2, 202), (5, 2, 203), (6, 1, 103)]
    command.upgrade(config, "head")
    assert asyncio.run(_on(database_url, _lines_of))[:2] == [(1, 1, 101), (1, 2, 102)]


def test_members_tokens_keep_working_through_0007_and_back(database_url: str) -> None:
    """0007 moves each member's token hash into member_credentials; its downgrade puts it back."""
    from coalition.auth.models import Role
    from coalition.auth.service import Authenticator
    from coalition.crypto import hash_secret
    from coalition.db import Database

    config = alembic_config(database_url)
    command.upgrade(config, "0006_partial_null_indexes")
    token = "cmt_old-derived-token-of-member-1"

    def seed(connection: Connection) -> None:
        connection.execute(text(
            "INSERT INTO members (id, loyalty_id, referral_code, token_hash, balance, held, owed, lifetime_points,"
            " created_at) VALUES (1, 'LX1', 'R1', :h, 0, 0, 0, 0, :t)"), {"h": hash_secret(token),
                                                                        "t": dt.datetime(2026, 11, 1)})

    asyncio.run(_on(database_url, seed, begin=True))
    command.upgrade(config, "head")

    async def authenticate() -> Any:
        db = Database(database_url, pool_size=1)
        try:
            return await Authenticator(db, cache_s=0).authenticate(token)
        finally:
            await db.dispose()

    caller = asyncio.run(authenticate())
    assert caller is not None and caller.role == Role.MEMBER and caller.member_id == 1

    command.downgrade(config, "0006_partial_null_indexes")

    def token_hash(connection: Connection) -> Any:
        return connection.execute(text("SELECT token_hash FROM members WHERE id = 1")).scalar_one()

    assert asyncio.run(_on(database_url, token_hash)) == hash_secret(token)
    command.upgrade(config, "head")
