"""Shared helpers for the benchmarks, one module per job.

- :mod:`benchlib.env`: paths, database names, the bench API's environment, ``log``.
- :mod:`benchlib.postgres`: recreate, vacuum and drop the scratch databases; server values.
- :mod:`benchlib.seeding`: the bench database's schema and seed, reused when it fits.
- :mod:`benchlib.pgbench`: the TPC-B baseline.
- :mod:`benchlib.server`: start and stop a uvicorn process; one GraphQL request.
- :mod:`benchlib.cpu`: where a run's CPU went; waiting for a quiet machine.
- :mod:`benchlib.wrk`: load generation with wrk and its report.
- :mod:`benchlib.profiles`: py-spy and pyinstrument summaries.

Every benchmark talks to 127.0.0.1 only and bounds each load run (<= 20 s). The bench
database is dropped and recreated by :func:`benchlib.postgres.recreate_pg_database`; the
database named ``test`` (and the others in ``FORBIDDEN_DBS``) is never touched.
"""
