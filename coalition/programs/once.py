"""Creating a program's definition once per idempotency key (rewards, stamp cards, quests).

The same pattern as the ledger's entries: ``INSERT ... ON CONFLICT DO NOTHING`` on the unique
``(owner, idempotency_key)``; nothing inserted means the key was used, and the row under it is the
answer when its request hash matches (a retry), IDEMPOTENCY_KEY_CONFLICT otherwise. The database's
unique constraint decides between two concurrent requests, not a read before the write.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import Base
from coalition.errors import IdempotencyKeyConflict

_M = TypeVar("_M", bound=Base)


def as_model(model: type[_M], row: Any) -> _M:
    """A table row as its model's object (what the API's types resolve), without a session."""
    return model.from_values(**row._mapping)


def internal_key(*parts: object) -> str:
    """A key programs write under a merchant's (or the network's) key space for their own ledger entries.

    It starts with a control character, which ``check_idempotency_key`` refuses in every client key, so no
    client request can take (or block) it."""
    return "\x1f" + ":".join(str(part) for part in parts)


async def insert_once(
    conn: AsyncConnection, model: type[Base], values: dict[str, Any], same_key: ColumnElement[bool],
) -> tuple[Any, bool]:
    """Insert ``values`` (with ``idempotency_key`` and ``request_hash``) unless ``same_key`` finds a row.

    Returns ``(row, created)``; raises IdempotencyKeyConflict when the row under the key was made
    by another request."""
    make_insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    table: Any = model.__table__
    row = (await conn.execute(
        make_insert(table).values(**values).on_conflict_do_nothing().returning(*table.c)
    )).first()
    if row is not None:
        return row, True
    earlier = (await conn.execute(select(*table.c).where(same_key))).first()
    if earlier is None:  # a conflict on another unique column than the key's
        raise IdempotencyKeyConflict(values["idempotency_key"])
    if earlier.request_hash != values["request_hash"]:
        raise IdempotencyKeyConflict(values["idempotency_key"])
    return earlier, False
