"""Settlement errors (each a :class:`~coalition.errors.DomainError` with a specific code).

InvalidInput
├── InvalidPolicy            INVALID_POINT_VALUE, INVALID_REIMBURSEMENT_RATE, INVALID_BREAKAGE_SHARE,
│                            INVALID_FUNDING_MODEL, INVALID_PERIOD, INVALID_TIMEZONE, INVALID_EFFECTIVE_FROM
└── InvalidPeriodEnd         PERIOD_END_IN_FUTURE, PERIOD_END_NOT_AFTER_LAST_BATCH, INVALID_PERIOD_END
NotFound
└── BatchNotFound            BATCH_NOT_FOUND
Conflict
├── IdempotencyKeyConflict   the key closed a batch for another periodEnd
└── SettlementRaced          SETTLEMENT_RACED: another run closed the activity first; run again
└── StatementKeyMismatch     STATEMENT_KEY_MISMATCH: the batch was salted under another master secret
"""

from __future__ import annotations

from coalition.errors import Conflict, InvalidInput, NotFound


class InvalidPolicy(InvalidInput):
    code = "INVALID_POLICY"


class InvalidPeriodEnd(InvalidInput):
    code = "INVALID_PERIOD_END"


class BatchNotFound(NotFound):
    code = "BATCH_NOT_FOUND"


class SettlementRaced(Conflict):
    code = "SETTLEMENT_RACED"


class StatementKeyMismatch(Conflict):
    """A version-2 batch's statements were salted under another master secret than the server's:
    their nonces cannot be derived again, so no export of them would verify."""

    code = "STATEMENT_KEY_MISMATCH"
