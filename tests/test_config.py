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
