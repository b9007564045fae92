"""Per-request DataLoaders: one batched query per kind of object per tick."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy import select

from coalition.db import Database
from coalition.ledger.models import Entry, Hold
from coalition.members.models import Member
from coalition.partners.models import Merchant


class _ByColumnLoader(DataLoader[int, Any]):
    model: Any
    column: str

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db

    async def batch_load_fn(self, keys: Iterable[int]) -> list[Any]:
        keys = list(keys)
        column = getattr(self.model, self.column)
        async with self.db.session() as session:
            rows = (await session.execute(select(self.model).where(column.in_(keys)))).scalars().all()
        by_key = {getattr(row, self.column): row for row in rows}
        return [by_key.get(key) for key in keys]


class MerchantByIdLoader(_ByColumnLoader):
    model, column = Merchant, "id"


class MemberByIdLoader(_ByColumnLoader):
    model, column = Member, "id"


class EntryByIdLoader(_ByColumnLoader):
    model, column = Entry, "id"


class ReversalByEntryIdLoader(_ByColumnLoader):
    model, column = Entry, "reverses_id"


class HoldByIdLoader(_ByColumnLoader):
    model, column = Hold, "id"


class RelatedMemberLoader(DataLoader[tuple[int, int], bool]):
    """Whether (merchant, member) have a relationship: one query per merchant per tick."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db

    async def batch_load_fn(self, keys: Iterable[tuple[int, int]]) -> list[bool]:
        from coalition.members.relations import related_member_ids

        keys = list(keys)
        by_merchant: dict[int, set[int]] = {}
        for merchant_id, member_id in keys:
            by_merchant.setdefault(merchant_id, set()).add(member_id)
        related = {merchant_id: await related_member_ids(self.db, merchant_id, members)
                   for merchant_id, members in by_merchant.items()}
        return [member_id in related[merchant_id] for merchant_id, member_id in keys]
