"""PostgreSQL only: a plain earn or redeem as one statement, its own transaction.

The multi-statement code in ``purchases.py`` is the ledger's definition of an earn and a
redemption; SQLite runs only that. On PostgreSQL each operation first tries one
data-modifying CTE that does the whole common case in one round trip: the entry, the
member's counters, the lot (earn) or the lot decrements and their allocations, soonest
expiry first then lot id (redeem), and postings that sum to zero. It runs without BEGIN
and COMMIT on a pooled asyncpg connection (``Database.driver_connection``): PostgreSQL
runs a lone statement as a transaction of its own, and skipping SQLAlchemy's execution
and the two extra round trips more than halves the Python time of an earn. Anything
unusual makes the statement write nothing and return no row, or fail, which undoes all
of it; the operation then runs again on the multi-statement path, which gives the result
or error it always gave.

Unusual: the idempotency key already used (a retry or a conflict), the merchant not
active, no such member, a member someone referred (referral bonuses), a member who owes
points, a balance that would pass ``MAX_POINTS``, too few points, an earn of no whole
point, and any change to the member row since the statement's snapshot.

Concurrency. Under READ COMMITTED every CTE reads the statement's snapshot; only an
UPDATE that meets a row changed since then looks at the newest version, and it re-checks
just its own WHERE there. The lots a CTE reads can therefore be stale. So the statement
reads the member's ``xmin`` (the transaction that wrote the row version) in the snapshot
and updates the member only ``WHERE xmin`` is still that: every ledger write that changes
a member's lots also UPDATEs the member row, under that row's lock, in the same
transaction (redeem, authorize, capture, void, hold expiry, reversals, lot expiry, earns
and bonuses; ``tests/ledger/test_ledger_fastpath.py`` checks each), so an unchanged
``xmin`` means the lots read in the snapshot are the lots as they are, and they stay so
while the statement holds the member's row lock. Everything written after the member
UPDATE (lot, lot decrements, allocations, postings) is joined to its RETURNING, so when
it matches nothing, nothing else is written; the entry, inserted before it, is undone by
the final SELECT, which divides by zero when the entry has no updated member beside it.
The CHECK constraints stay the last line: one firing fails the statement like the rest.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, NamedTuple

import asyncpg

from coalition.db import Database
from coalition.ledger.core import MAX_POINTS
from coalition.members.models import Member
from coalition.partners.models import MerchantStatus

_MEMBER_COLUMNS = tuple(Member.__table__.columns)
_RETURNING = ", ".join(f"m.{c.name}" for c in _MEMBER_COLUMNS)


class _Statement(NamedTuple):
    """SQL with asyncpg's numbered parameters, and the names they stand for, in order."""

    sql: str
    names: tuple[str, ...]


def _statement(sql: str) -> _Statement:
    """Number the ``:name`` parameters of ``sql`` ($1, $2, ...) in order of first use."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return _Statement(re.sub(r"(?<![:\w]):([a-z_]\w*)", number, sql), tuple(names))


# Both statements end alike: the updated member row and the entry's id and points, or, when
# the entry went in but the member update missed, a division by zero that fails the
# statement and so undoes the entry.
_RESULT = """SELECT u.*, e.id AS entry_id, e.points AS entry_points, 1 / CAST(u.id IS NOT NULL AS int) AS applied
FROM e LEFT JOIN u ON u.id = e.member_id
"""

# The member is read once, in the snapshot, with its row version. The conditions of the
# common case are tested here (so a refusal inserts nothing) and again in the UPDATE, on
# the newest version of the row.
_EARN_SQL = f"""
WITH snap AS (
    SELECT m.id, m.xmin AS version,
           CAST(:amount_minor AS bigint) * mc.earn_rate_points_per_unit / CAST(:minor_per_unit AS bigint) AS points
    FROM members m
    JOIN merchants mc ON mc.id = CAST(:merchant_id AS bigint) AND mc.status = '{MerchantStatus.ACTIVE.value}'
    WHERE m.loyalty_id = CAST(:loyalty_id AS varchar) AND m.referred_by_id IS NULL AND m.owed = 0
),
e AS (
    INSERT INTO entries (kind, member_id, merchant_id, points, amount_minor, reference, idempotency_key,
                         request_hash, created_at)
    SELECT 'EARN', snap.id, CAST(:merchant_id AS bigint), snap.points, CAST(:amount_minor AS bigint),
           CAST(:reference AS varchar), CAST(:idempotency_key AS varchar), CAST(:request_hash AS varchar),
           CAST(:now AS timestamptz)
    FROM snap
    WHERE snap.points > 0
    ON CONFLICT DO NOTHING
    RETURNING id, member_id, points
),
u AS (
    UPDATE members m
    SET balance = m.balance + e.points, lifetime_points = m.lifetime_points + e.points
    FROM e, snap
    WHERE m.id = e.member_id AND m.xmin = snap.version
      AND m.referred_by_id IS NULL AND m.owed = 0 AND m.balance <= {MAX_POINTS} - e.points
    RETURNING {_RETURNING}
),
lot AS (
    INSERT INTO lots (member_id, entry_id, issuer_merchant_id, points, remaining, expires_at, reversed, created_at)
    SELECT u.id, e.id, CAST(:merchant_id AS bigint), e.points, e.points, CAST(:expires_at AS timestamptz), false,
           CAST(:now AS timestamptz)
    FROM u JOIN e ON e.member_id = u.id
),
legs AS (
    INSERT INTO postings (entry_id, account, account_id, points)
    SELECT e.id, leg.account, CASE leg.account WHEN 'ISSUED' THEN CAST(:merchant_id AS bigint) ELSE u.id END,
           leg.sign * e.points
    FROM u JOIN e ON e.member_id = u.id,
         (VALUES (1, 'ISSUED', -1), (2, 'MEMBER', 1)) AS leg (n, account, sign)
    ORDER BY leg.n
)
{_RESULT}"""

# Lots in FIFO order (soonest expiry, then id) up to the first that covers the points, as in
# ``core.open_lots``: ``walk`` steps along ix_lots_open one lot at a time and stops there, so a
# redemption reads the lots it spends, however many more the member holds. Each lot gives
# min(remaining, points still needed).
_REDEEM_SQL = f"""
WITH RECURSIVE snap AS (
    SELECT m.id, m.xmin AS version
    FROM members m
    JOIN merchants mc ON mc.id = CAST(:merchant_id AS bigint) AND mc.status = '{MerchantStatus.ACTIVE.value}'
    WHERE m.loyalty_id = CAST(:loyalty_id AS varchar) AND m.owed = 0 AND m.balance >= CAST(:points AS bigint)
),
e AS (
    INSERT INTO entries (kind, member_id, merchant_id, points, reference, idempotency_key, request_hash,
                         created_at)
    SELECT 'REDEEM', snap.id, CAST(:merchant_id AS bigint), -CAST(:points AS bigint), CAST(:reference AS varchar),
           CAST(:idempotency_key AS varchar), CAST(:request_hash AS varchar), CAST(:now AS timestamptz)
    FROM snap
    ON CONFLICT DO NOTHING
    RETURNING id, member_id, points
),
walk (member_id, id, issuer_merchant_id, remaining, expires_at, points_ahead) AS (
    (SELECT l.member_id, l.id, l.issuer_merchant_id, l.remaining, l.expires_at, CAST(0 AS bigint)
     FROM lots l JOIN snap ON l.member_id = snap.id
     WHERE l.remaining > 0
     ORDER BY l.expires_at, l.id
     LIMIT 1)
    UNION ALL
    SELECT n.member_id, n.id, n.issuer_merchant_id, n.remaining, n.expires_at, w.points_ahead + w.remaining
    FROM walk w CROSS JOIN LATERAL (
        SELECT l.member_id, l.id, l.issuer_merchant_id, l.remaining, l.expires_at
        FROM lots l
        WHERE l.member_id = w.member_id AND l.remaining > 0 AND (l.expires_at, l.id) > (w.expires_at, w.id)
        ORDER BY l.expires_at, l.id
        LIMIT 1
    ) n
    WHERE w.points_ahead + w.remaining < CAST(:points AS bigint)
),
take AS (
    SELECT id, issuer_merchant_id, expires_at, least(remaining, CAST(:points AS bigint) - points_ahead) AS points
    FROM walk
),
u AS (
    UPDATE members m
    SET balance = m.balance - CAST(:points AS bigint)
    FROM e, snap
    WHERE m.id = e.member_id AND m.xmin = snap.version
      AND m.owed = 0 AND m.balance >= CAST(:points AS bigint)
      AND (SELECT coalesce(sum(take.points), 0) FROM take) = CAST(:points AS bigint)
    RETURNING {_RETURNING}
),
spent AS (
    UPDATE lots l
    SET remaining = l.remaining - take.points
    FROM take, u
    WHERE l.id = take.id
),
honored AS (
    INSERT INTO allocations (entry_id, lot_id, member_id, issuer_merchant_id, merchant_id, kind, points, created_at)
    SELECT e.id, take.id, u.id, take.issuer_merchant_id, CAST(:merchant_id AS bigint), 'REDEEM', take.points,
           CAST(:now AS timestamptz)
    FROM take, u JOIN e ON e.member_id = u.id
    ORDER BY take.expires_at, take.id
),
legs AS (
    INSERT INTO postings (entry_id, account, account_id, points)
    SELECT e.id, leg.account, CASE leg.account WHEN 'MEMBER' THEN u.id ELSE CAST(:merchant_id AS bigint) END,
           leg.sign * CAST(:points AS bigint)
    FROM u JOIN e ON e.member_id = u.id,
         (VALUES (1, 'MEMBER', -1), (2, 'HONORED', 1)) AS leg (n, account, sign)
    ORDER BY leg.n
)
{_RESULT}"""

_EARN = _statement(_EARN_SQL)
_REDEEM = _statement(_REDEEM_SQL)


def _member(row: asyncpg.Record) -> Member:
    return Member(**{c.key: row[i] for i, c in enumerate(_MEMBER_COLUMNS)})


async def _run(db: Database, statement: _Statement, params: dict[str, Any]) -> tuple[int, int, Member] | None:
    """Run one fast statement, its own transaction: ``(entry_id, entry_points, member)``, or None.

    None means the multi-statement path must run: the statement wrote nothing, or failed,
    which undoes all of it (the statement fails itself when the member update missed after
    the entry went in). A lost connection is handed over too: whether or not the statement
    committed, the multi-statement path answers right, by replaying the entry if it did.
    """
    try:
        async with db.driver_connection() as conn:
            row = await conn.fetchrow(statement.sql, *(params[name] for name in statement.names))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
        return None
    if row is None:
        return None
    n = len(_MEMBER_COLUMNS)
    return int(row[n]), int(row[n + 1]), _member(row)


async def earn(
    db: Database, *, merchant_id: int, loyalty_id: str, amount_minor: int, minor_per_unit: int,
    reference: str | None, idempotency_key: str, request_hash: str, now: dt.datetime, expires_at: dt.datetime,
) -> tuple[int, int, Member] | None:
    """A plain earn: ``(entry_id, points, member after)``, or None to take the multi-statement path."""
    return await _run(db, _EARN, {
        "merchant_id": merchant_id, "loyalty_id": loyalty_id, "amount_minor": amount_minor,
        "minor_per_unit": minor_per_unit, "reference": reference, "idempotency_key": idempotency_key,
        "request_hash": request_hash, "now": now, "expires_at": expires_at,
    })


async def redeem(
    db: Database, *, merchant_id: int, loyalty_id: str, points: int, reference: str | None,
    idempotency_key: str, request_hash: str, now: dt.datetime,
) -> tuple[int, int, Member] | None:
    """A plain redemption: ``(entry_id, -points, member after)``, or None to take the multi-statement path."""
    return await _run(db, _REDEEM, {
        "merchant_id": merchant_id, "loyalty_id": loyalty_id, "points": points, "reference": reference,
        "idempotency_key": idempotency_key, "request_hash": request_hash, "now": now,
    })
