"""PostgreSQL helpers over ``psql``/``createdb``/``dropdb``: recreate, vacuum, drop the scratch
databases (never one in ``FORBIDDEN_DBS``), and read a value from the server.
"""

from __future__ import annotations

import subprocess

from benchlib.env import BENCH_DB, FORBIDDEN_DBS, PG_HOST, PG_USER, PGBENCH_DB, log


def recreate_pg_database(name: str) -> None:
    if name in FORBIDDEN_DBS:
        raise SystemExit(f"refusing to drop database {name!r}")
    subprocess.run(["dropdb", "-h", PG_HOST, "-U", PG_USER, "--if-exists", "--force", name], check=True)
    subprocess.run(["createdb", "-h", PG_HOST, "-U", PG_USER, name], check=True)


def vacuum_bench_database() -> None:
    """``VACUUM (ANALYZE)`` the bench database, as pgbench vacuums its own tables before each run.

    This machine's PostgreSQL runs with autovacuum off. Without this, every redemption's old
    lot version and every member update stays behind, and each run with ``--reuse`` measures
    a more bloated database than the one before (on 6 Dec: 789,255 dead lot versions, and the
    in-process redemption batch's median time had doubled)."""
    log(f"VACUUM (ANALYZE) {BENCH_DB}")
    subprocess.run(["psql", "-h", PG_HOST, "-U", PG_USER, "-d", BENCH_DB, "-q", "-c", "VACUUM (ANALYZE)"],
                   check=True, capture_output=True)


def pg_sessions_opened(name: str) -> int:
    """Sessions ever opened on database ``name`` (PostgreSQL 14+), read from ``postgres``.

    The difference across a load run is how many new connections the API opened during it:
    each costs a backend start and, on that connection, parsing and planning every statement
    again, so a steady load should open next to none."""
    return int(_server_value(f"SELECT sessions FROM pg_stat_database WHERE datname = '{name}'") or 0)


def pg_database_exists(name: str) -> bool:
    return _server_value(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"


def _server_value(sql: str) -> str:
    """The one value ``sql`` returns, read over the ``postgres`` database ('' for no row)."""
    return subprocess.run(
        ["psql", "-h", PG_HOST, "-U", PG_USER, "-d", "postgres", "-Atc", sql],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def drop_pg_databases() -> None:
    """Drop the two scratch databases the benchmarks create (``coalition_bench``, ``coalition_pgbench``)."""
    for name in (BENCH_DB, PGBENCH_DB):
        if name in FORBIDDEN_DBS:
            raise SystemExit(f"refusing to drop database {name!r}")
        subprocess.run(["dropdb", "-h", PG_HOST, "-U", PG_USER, "--if-exists", "--force", name], check=True)
