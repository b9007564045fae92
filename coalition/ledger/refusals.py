"""Idempotency covers refusals: a refused write's outcome stays under its key.

A write refused because of the state it met (too few points, no proof of presence, a
suspended merchant, an unknown member or hold, a closed hold...) is recorded under the
merchant's idempotency key after its transaction rolled back. For
``COALITION_IDEMPOTENCY_RETENTION_S`` (default 24 h) a retry with the same key and input gets
the same ``userErrors`` entry (code, message, field) even if the state changed meanwhile (the
balance grew); the same key with another input gets IDEMPOTENCY_KEY_CONFLICT. After the
retention period the worker purges the record and the key is free again.

Not recorded: input that fails the checks made before the database is read (a malformed
loyalty ID, points out of range, a bad key). Those depend on the input alone, so a retry
gets the same error anyway. Nor are IDEMPOTENCY_KEY_CONFLICT and errors that are no
refusal (the database unreachable): a retry of those may still succeed.

A kept refusal is outcome 1 of ``coalition.ledger.idempotency``'s precedence, the replay. When a
race wrote both (a refused request and a concurrent retry with the same key that succeeded): the
success wins. Every lookup reads the entry first and the refusal
only when there is no entry, and a refusal is written only if no entry has the key.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import delete, exists, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import Database
from coalition.errors import DomainError, IdempotencyKeyConflict
from coalition.ledger.idempotency import KeyColumns, find_earlier
from coalition.ledger.models import Entry, Refusal

logger = logging.getLogger("coalition.ledger")

MAX_MESSAGE_LENGTH = 500
# A refusal is kept under the merchant's key, as its entry would have been.
REFUSAL_KEYS = KeyColumns(Refusal, key="idempotency_key", fingerprint="request_hash", scope=("merchant_id",))


class RecordedRefusal(DomainError):
    """A refusal read back from ``ledger_refusals``: the same code, message and field as the first time."""


async def raise_if_recorded(conn: AsyncConnection, merchant_id: int | None, key: str, fingerprint: str) -> None:
    """Raise the refusal recorded under this merchant's key, or IDEMPOTENCY_KEY_CONFLICT for other input."""
    if merchant_id is None:
        return
    kept = await find_earlier(conn, REFUSAL_KEYS, (merchant_id,), key, fingerprint)
    if kept is not None:
        raise RecordedRefusal(kept.message, code=kept.code, field=kept.field)


def is_recordable(error: BaseException) -> bool:
    return isinstance(error, DomainError) and not isinstance(error, IdempotencyKeyConflict | RecordedRefusal)


async def record(
    db: Database, *, merchant_id: int, key: str, fingerprint: str, error: DomainError, now: dt.datetime,
    member_id: int | None = None,
) -> None:
    """Keep ``error`` under the key, unless an entry (a success) or another refusal has it already.

    Its own short transaction. A failure to record is logged and swallowed: the caller still
    gets its refusal, and a retry then runs afresh as it did before refusals were kept.
    """
    values: dict[str, Any] = {
        "merchant_id": merchant_id, "idempotency_key": key, "request_hash": fingerprint, "member_id": member_id,
        "code": error.code, "message": error.message[:MAX_MESSAGE_LENGTH], "field": error.field, "created_at": now,
    }
    taken = exists().where(Entry.merchant_id == merchant_id, Entry.idempotency_key == key)
    source = select(*[literal(value, Refusal.__table__.c[name].type).label(name) for name, value in values.items()])
    try:
        async with db.transaction() as conn:
            make_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            await conn.execute(
                make_insert(Refusal).from_select(list(values), source.where(~taken)).on_conflict_do_nothing()
            )
    except (SQLAlchemyError, OSError) as exc:
        logger.warning("could not keep a %s refusal of merchant %s: %s", error.code, merchant_id, type(exc).__name__)


async def purge(db: Database, *, older_than: dt.datetime) -> int:
    """Delete refusals recorded before ``older_than`` (the retention period's start). Returns how many."""
    async with db.transaction() as conn:
        result = await conn.execute(delete(Refusal).where(Refusal.created_at < older_than))
    return int(result.rowcount or 0)
