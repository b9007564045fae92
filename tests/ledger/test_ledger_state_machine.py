"""The ledger's hypothesis state machine (tests/ledger_machine.py) as it is: earn, redeem, authorize, capture,
void, reverse, expire and release against the model of balances, lots and holds, with the invariants after
every step."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from ledger_machine import LedgerMachine

LedgerMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerStateMachine = LedgerMachine.TestCase
