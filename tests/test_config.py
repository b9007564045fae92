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
