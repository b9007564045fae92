# Coalition — the two commands are `make run` and `make test`.
#
#   make run            venv + install + demo network (first time only) + API on http://127.0.0.1:8000/graphql
#   make test           the test suite on the embedded default (SQLite, in-process limits)
#   make test-services  the same suite on PostgreSQL + Redis at 127.0.0.1 (skips when absent, fails under CI=true)
#   make lint           ruff (coalition, tests, bench) + mypy --strict + import-linter (layering)
#   make schema         regenerate schema.graphql from the code (a test fails when it is stale)
#   make venv           just the virtual environment (.venv), idempotent

# Prefer python3.11; any python3 >= 3.11 will do.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run venv demo serve test test-services lint schema clean

venv: $(STAMP)

# Re-installs only when pyproject.toml changes (or the venv is new).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Coalition needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1)." >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# One process for everything: the API also runs the periodic jobs (expired holds, ...), unless
# COALITION_RUN_WORKER=0 is set (then run `coalition worker` beside it).
run: venv
	$(BIN)/coalition demo --if-empty --host $(HOST) --port $(PORT)
	COALITION_RUN_WORKER=$${COALITION_RUN_WORKER:-1} $(BIN)/coalition serve --host $(HOST) --port $(PORT)

demo: venv
	$(BIN)/coalition demo

serve: venv
	COALITION_RUN_WORKER=$${COALITION_RUN_WORKER:-1} $(BIN)/coalition serve --host $(HOST) --port $(PORT)

test: venv
	env -u COALITION_TEST_DATABASE_URL -u COALITION_TEST_REDIS_URL $(BIN)/pytest

# Reachability of the services, in Python so it needs nothing but the venv.
define SERVICES_CHECK
import asyncio, os, sys
import asyncpg, redis.asyncio as aioredis
async def main():
    url = os.environ["COALITION_TEST_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncio.wait_for(asyncpg.connect(url), 5)
    await conn.close()
    client = aioredis.from_url(os.environ["COALITION_TEST_REDIS_URL"], socket_connect_timeout=5)
    try:
        await client.ping()
    finally:
        await client.aclose()
try:
    asyncio.run(main())
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
endef
export SERVICES_CHECK

test-services: venv
	@export COALITION_TEST_DATABASE_URL='$(TEST_DATABASE_URL)' COALITION_TEST_REDIS_URL='$(TEST_REDIS_URL)'; \
	if ! $(BIN)/python -c "$$SERVICES_CHECK"; then \
		if [ "$${CI:-}" = "true" ]; then \
			echo "test-services: PostgreSQL ($(TEST_DATABASE_URL)) or Redis ($(TEST_REDIS_URL)) is unreachable, and CI=true: failing." >&2; \
			exit 1; \
		fi; \
		echo "test-services: SKIPPED: PostgreSQL ($(TEST_DATABASE_URL)) or Redis ($(TEST_REDIS_URL)) is unreachable."; \
		echo "  Start PostgreSQL (with a database named test) and Redis on 127.0.0.1, or set TEST_DATABASE_URL / TEST_REDIS_URL."; \
		exit 0; \
	fi; \
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check coalition tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider tests/test_architecture.py

schema: venv
	$(BIN)/python -c 'from coalition.graphql.schema import schema; open("schema.graphql", "w").write(str(schema))'

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
