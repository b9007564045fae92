"""PostgreSQL only: writing the fast paths' batch statements, and running one over a batch.

The ledger's fast path (:mod:`coalition.ledger.fastpath`) and the gift cards'
(:mod:`coalition.giftcards.fastpath`) each do a whole operation in one statement of hand-written
SQL, run over a batch of operations. They write it with these helpers, so that every table,
column and enum value in the text comes from the models (a rename or a new spelling fails at
import, not in production), and run it on asyncpg, whose parameters are numbered: the SQL
names its parameters ``:name`` and :func:`number_parameters` numbers them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy.dialects import postgresql

from coalition.db import Database
from coalition.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


def column_list(model: Any, *names: str) -> str:
    """``names`` as an SQL column list, each checked against ``model``'s table (KeyError if not one of its)."""
    return ", ".join(model.__table__.c[name].name for name in names)


def sql_literal(column: Any, value: Any) -> str:
    """``value`` as an SQL literal, as ``column`` stores it (an enum member: its stored string)."""
    return str(column.type.literal_processor(postgresql.dialect())(value))  # type: ignore[no-untyped-call]


_DELIVERIES, _ENDPOINTS = WebhookDelivery.__tablename__, WebhookEndpoint.__tablename__


def outbox_cte(event_type: str, *, member: str, joined_on: str, payload: str) -> str:
    """The ``outbox`` CTE of a fast path's statement: the webhook deliveries of the batch's operations
    (coalition/webhooks/outbox.py writes the same rows on the other paths).

    One row per operation marked ``es.hooked`` (its merchant has an endpoint for ``event_type``, by
    the per-process cache: a merchant without webhooks costs the statement one boolean) and per
    active endpoint of the merchant's or the network's that takes the event, in operation order.
    ``member``: the delivery's member id (SQL); ``joined_on``: how ``es`` joins the locked rows
    ``u``, so the rows are written after that lock, as on the multi-statement path; ``payload``:
    the arguments of the event's ``json_build_object``.
    """
    return f"""outbox AS (
    INSERT INTO {_DELIVERIES} ({column_list(WebhookDelivery, "endpoint_id", "merchant_id", "member_id", "type", "data",
                                            "status", "attempts", "next_attempt_at", "created_at")})
    SELECT w.id, es.merchant_id, {member}, '{event_type}', CAST(json_build_object({payload}) AS text),
           {sql_literal(WebhookDelivery.status, DeliveryStatus.PENDING)}, 0, es.now, es.now
    FROM u JOIN es ON {joined_on}
         JOIN {_ENDPOINTS} w ON (w.merchant_id = es.merchant_id OR w.merchant_id IS NULL) AND w.active
                                AND position(',{event_type},' IN w.events) > 0
    WHERE es.hooked
    ORDER BY es.n, w.id
)"""


class NumberedSql(NamedTuple):
    """SQL with asyncpg's numbered parameters, and the names they stand for, in order."""

    sql: str
    names: tuple[str, ...]


def number_parameters(sql: str) -> NumberedSql:
    """``sql`` with its ``:name`` parameters numbered ($1, $2, ...) in order of first use.

    ``::type`` casts and ``'12:30'``-like text after a word character are left alone."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return NumberedSql(re.sub(r"(?<![:\w]):([a-z_]\w*)", number, sql), tuple(names))


async def fetch_batch(db: Database, statement: NumberedSql,
                      operations: Sequence[Mapping[str, Any]]) -> list[asyncpg.Record]:
    """The rows of ``statement`` run once for a batch, as its own transaction.

    Each parameter gets an array with one value per operation (``operations[i][name]``). It
    returns no rows when the statement failed (a division by zero, the statements' way of
    failing when a row changed after their snapshot, runs it once more first) or the
    connection was lost: the caller then hands every operation to its multi-statement path.
    """
    arrays = [[operation[name] for operation in operations] for name in statement.names]
    try:
        async with db.driver_connection() as conn:
            try:
                return list(await conn.fetch(statement.sql, *arrays))
            except asyncpg.DivisionByZeroError:
                return list(await conn.fetch(statement.sql, *arrays))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
        return []
