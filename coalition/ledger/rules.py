"""The ledger's rules that both paths apply, each written once.

The multi-statement path (``core.py``, ``purchases.py``) builds its statements from these
with SQLAlchemy; the PostgreSQL fast path (``fastpath.py``) renders the same expressions into
its SQL text (:func:`render`). So the earn rate's rounding, the merchant status that may
write, the balance limit, the lots' FIFO order and the postings of an earn and a redemption
cannot drift apart between the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, FromClause, and_, literal_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import QueryableAttribute

from coalition.ledger.models import Account
from coalition.partners.models import MerchantStatus

MAX_POINTS = 2**31 - 1  # GraphQL Int: no balance or amount may pass it

# Lots are spent soonest expiry first, then oldest: every walk over a member's lots orders so.
FIFO_ORDER = ("expires_at", "id")

Sql = ColumnElement[Any] | QueryableAttribute[Any]  # a column, a model's attribute or an expression


def earn_points(amount_minor: Sql, earn_rate: Sql, minor_per_unit: Sql) -> ColumnElement[int]:
    """An earn's points: ``amount_minor * earn_rate // minor_per_unit``, rounded down, so a network
    never issues a point nobody paid for."""
    return (amount_minor * earn_rate) // minor_per_unit


def merchant_may_write(status: Sql) -> ColumnElement[bool]:
    """Only an active merchant writes to the ledger (a suspended one: MERCHANT_SUSPENDED)."""
    return status == MerchantStatus.ACTIVE


def within_max_points(balance: Sql, points: Sql) -> ColumnElement[bool]:
    """Adding ``points`` keeps the balance within :data:`MAX_POINTS`."""
    return balance <= literal_column(str(MAX_POINTS), BigInteger) - points


def may_debit(balance: Sql, owed: Sql, points: Sql) -> ColumnElement[bool]:
    """A member may spend ``points``: it holds them and owes none (debt is repaid before any spending).
    As the condition of the debit's UPDATE it is what keeps a balance from going negative."""
    return and_(balance >= points, owed == 0)


def fifo(lots: FromClause) -> list[ColumnElement[Any]]:
    """The FIFO order's columns of ``lots`` (the table or an alias of it)."""
    return [lots.c[name] for name in FIFO_ORDER]


@dataclass(frozen=True)
class Leg:
    """One posting of a movement: the account, whether it is the member's (else the merchant's), the sign."""

    account: Account
    of_member: bool
    sign: int


# A plain earn (no debt to repay) and a redemption; sums to zero.
EARN_LEGS = (Leg(Account.ISSUED, False, -1), Leg(Account.MEMBER, True, 1))
REDEEM_LEGS = (Leg(Account.MEMBER, True, -1), Leg(Account.HONORED, False, 1))


def postings(legs: Iterable[Leg], *, member_id: int, merchant_id: int | None,
             points: int) -> list[tuple[Account, int | None, int]]:
    """The legs as ``core.add_postings`` takes them."""
    return [(leg.account, member_id if leg.of_member else merchant_id, leg.sign * points) for leg in legs]


def render(expression: ColumnElement[Any]) -> str:
    """``expression`` as PostgreSQL text, its values written in (for the fast path's SQL)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
