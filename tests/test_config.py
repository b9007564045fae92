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
