"""Which members a merchant has a relationship with: the base of tenant isolation.

A merchant may see a member it enrolled or that has any transaction with it (an earn,
redemption, hold, reversal: every ledger entry names its merchant). Anything else it
learns about a member comes from what the customer presents at the till (loyalty ID or
QR code), never from browsing.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, union

from coalition.db import Database
from coalition.ledger.models import Entry
from coalition.members.models import Member


async def related_member_ids(db: Database, merchant_id: int, member_ids: Collection[int]) -> set[int]:
    """The members among ``member_ids`` that ``merchant_id`` enrolled or has a transaction with."""
    if not member_ids:
        return set()
    wanted = sorted(set(member_ids))
    query = union(
        select(Member.id).where(Member.id.in_(wanted), Member.enrolled_by_merchant_id == merchant_id),
        select(Entry.member_id).where(Entry.member_id.in_(wanted), Entry.merchant_id == merchant_id),
    )
    async with db.read() as conn:
        return {int(row[0]) for row in (await conn.execute(query)).all()}
