"""Settings read from the environment: defaults, values and refusals."""

from __future__ import annotations

import pytest

from coalition.config import ConfigError, load_settings


def test_ledger_batches_in_flight_defaults_to_one_and_must_be_positive() -> None:
    assert load_settings({}).ledger_batches_in_flight == 1
    assert load_settings({"COALITION_LEDGER_BATCHES_IN_FLIGHT": "3"}).ledger_batches_in_flight == 3
    with pytest.raises(ConfigError, match="COALITION_LEDGER_BATCHES_IN_FLIGHT=0 must be at least 1"):
        load_settings({"COALITION_LEDGER_BATCHES_IN_FLIGHT": "0"})
    with pytest.raises(ConfigError, match="is not an integer"):
        load_settings({"COALITION_LEDGER_BATCHES_IN_FLIGHT": "two"})


def test_auth_and_metrics_settings() -> None:
    defaults = load_settings({})
    assert (defaults.auth_failures_per_min, defaults.metrics_token, defaults.metrics_port,
            defaults.metrics_host) == (30, None, None, "127.0.0.1")
    given = load_settings({"COALITION_AUTH_FAILURES_PER_MIN": "5", "COALITION_METRICS_TOKEN": "t" * 16,
                           "COALITION_METRICS_PORT": "9100", "COALITION_METRICS_HOST": "::1"})
    assert (given.auth_failures_per_min, given.metrics_token, given.metrics_port,
            given.metrics_host) == (5, "t" * 16, 9100, "::1")
    with pytest.raises(ConfigError, match="COALITION_METRICS_TOKEN is 6 characters"):
        load_settings({"COALITION_METRICS_TOKEN": "secret"})
    with pytest.raises(ConfigError, match="COALITION_AUTH_FAILURES_PER_MIN=0 must be at least 1"):
        load_settings({"COALITION_AUTH_FAILURES_PER_MIN": "0"})


def test_member_access_settings() -> None:
    defaults = load_settings({})
    assert (defaults.public_url, defaults.member_claim_ttl_s) == ("http://127.0.0.1:8000", 7 * 24 * 3600)
    custom = load_settings({"COALITION_PUBLIC_URL": "https://rewards.example.com/",
                            "COALITION_MEMBER_CLAIM_TTL_S": "900"})
    assert (custom.public_url, custom.member_claim_ttl_s) == ("https://rewards.example.com", 900)
    for bad in ({"COALITION_PUBLIC_URL": "rewards.example.com"}, {"COALITION_PUBLIC_URL": "https://x.example/?a#b"},
                {"COALITION_MEMBER_CLAIM_TTL_S": "10"}):
        with pytest.raises(ConfigError):
            load_settings(bad)


def test_database_and_redis_timeouts_have_defaults_that_answer_within_2_s() -> None:
    settings = load_settings({})
    assert (settings.db_connect_timeout_s, settings.db_command_timeout_s, settings.db_statement_timeout_s,
            settings.db_pool_timeout_s, settings.redis_timeout_s) == (1.0, 1.25, 1.0, 1.0, 0.5)
    assert load_settings({"COALITION_DB_COMMAND_TIMEOUT_S": "30", "COALITION_DB_STATEMENT_TIMEOUT_S": "25"}
                         ).db_statement_timeout_s == 25.0
    assert load_settings({"COALITION_DB_COMMAND_TIMEOUT_S": "0"}).db_command_timeout_s == 0.0


def test_the_statement_timeout_must_be_shorter_than_the_command_timeout() -> None:
    # Else the client gives up on a slow statement as on a hung server, and drops the connection.
    with pytest.raises(ConfigError, match=r"COALITION_DB_STATEMENT_TIMEOUT_S=2\.0 must be below"):
        load_settings({"COALITION_DB_STATEMENT_TIMEOUT_S": "2"})
    with pytest.raises(ConfigError, match="must not be negative"):
        load_settings({"COALITION_DB_CONNECT_TIMEOUT_S": "-1"})


def test_query_budgets_are_read_by_name_and_checked() -> None:
    assert load_settings({}).query_budget == {} and load_settings({}).anonymous_query_budget == {}
    settings = load_settings({"COALITION_QUERY_BUDGET": "fields=500, tokens=3000",
                              "COALITION_ANONYMOUS_QUERY_BUDGET": "aliases=5,"})
    assert settings.query_budget == {"fields": 500, "tokens": 3000}
    assert settings.anonymous_query_budget == {"aliases": 5}
    with pytest.raises(ConfigError, match="COALITION_QUERY_BUDGET: unknown budget 'nodes'; use tokens, depth"):
        load_settings({"COALITION_QUERY_BUDGET": "nodes=5"})
    with pytest.raises(ConfigError, match="COALITION_ANONYMOUS_QUERY_BUDGET: depth='x' is not a whole number"):
        load_settings({"COALITION_ANONYMOUS_QUERY_BUDGET": "depth=x"})
    with pytest.raises(ConfigError, match="COALITION_QUERY_BUDGET: fields=0 must be at least 1"):
        load_settings({"COALITION_QUERY_BUDGET": "fields=0"})


def test_refusal_delay_is_read_in_milliseconds() -> None:
    assert load_settings({}).refusal_delay_s == 0.1
    assert load_settings({"COALITION_REFUSAL_DELAY_MS": "0"}).refusal_delay_s == 0.0
    assert load_settings({"COALITION_REFUSAL_DELAY_MS": "250"}).refusal_delay_s == 0.25


def test_the_api_runs_the_scheduler_only_when_told() -> None:
    defaults = load_settings({})
    assert (defaults.run_worker, defaults.hold_sweep_interval_s, defaults.analyze_interval_s) == (False, 5.0, 0.0)
    for raw in ("1", "true", "YES", "on"):
        assert load_settings({"COALITION_RUN_WORKER": raw}).run_worker is True
    for raw in ("0", "false", "", "off"):
        assert load_settings({"COALITION_RUN_WORKER": raw}).run_worker is False
    with pytest.raises(ConfigError, match="COALITION_RUN_WORKER='maybe' must be 1 or 0"):
        load_settings({"COALITION_RUN_WORKER": "maybe"})
