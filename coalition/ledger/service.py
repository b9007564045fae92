"""The ledger's public face: one class with every operation.

Each write is one database transaction of a few Core statements (DESIGN.md: the ORM's
unit of work costs 2-3x on this path); on PostgreSQL a plain earn or redemption is one
statement (:mod:`coalition.ledger.fastpath`), with those statements as its fallback.
Input is checked before the transaction opens; a refusal raises a
:class:`~coalition.errors.DomainError` and rolls everything back.
"""

from __future__ import annotations

from coalition.ledger.bonuses import BonusOperations
from coalition.ledger.expiry import ExpiryOperations
from coalition.ledger.holds import HoldOperations
from coalition.ledger.purchases import PurchaseOperations
from coalition.ledger.reversals import ReversalOperations


class Ledger(PurchaseOperations, HoldOperations, ReversalOperations, ExpiryOperations, BonusOperations):
    """Earn, redeem, authorize/capture/void, reverse, expire, network bonuses. See each mixin's module."""
