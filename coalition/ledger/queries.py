"""Reading the ledger: pages of a member's history."""

from __future__ import annotations

from sqlalchemy import select

from coalition.db import Database
from coalition.ledger.models import Entry


async def member_history(
    db: Database, member_id: int, *, merchant_id: int | None, before_id: int | None, limit: int
) -> list[Entry]:
    """Newest first; only ``merchant_id``'s transactions when given (a merchant's view)."""
    query = select(Entry).where(Entry.member_id == member_id)
    if merchant_id is not None:
        query = query.where(Entry.merchant_id == merchant_id)
    if before_id is not None:
        query = query.where(Entry.id < before_id)
    async with db.session() as session:
        return list((await session.execute(query.order_by(Entry.id.desc()).limit(limit))).scalars())
