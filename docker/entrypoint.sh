#!/bin/sh
# Migrate, then serve: the same CLI commands the tests exercise (tests/test_cli.py).
# With arguments, run them as a coalition command instead: `docker run IMAGE keys create`,
# or `docker run IMAGE worker` for the scheduler of periodic jobs (compose's worker service).
# The API schedules nothing itself unless COALITION_RUN_WORKER=1.
set -eu
if [ "$#" -gt 0 ]; then
    exec coalition "$@"
fi
coalition migrate
exec coalition serve --host 0.0.0.0 --port "${PORT:-8000}" --workers "${WORKERS:-2}"
