"""Exporting a merchant's (or the network's) members and transactions as CSV, streamed.

Each function yields the CSV a chunk of rows at a time, reading the database by keyset
(``id > last``) in short read transactions of ``PAGE`` rows: memory is one page whatever
the size, and a slow client never holds a connection between pages.

Scope, as the API's access rules (``coalition/graphql/access.py``): ``merchant_id`` None is the
whole network (admins); else the merchant's members (those it enrolled or has a transaction
with) and its own transactions only. No contact data: the API shows it to the member alone,
and an export follows the same rule. Text a merchant typed (a reference) that a spreadsheet
would run as a formula is written with a leading ``'`` (OWASP's CSV injection advice).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from sqlalchemy import exists, select, union

from coalition.db import Database
from coalition.ledger.models import Entry
from coalition.members.models import Member
from coalition.members.service import tier_for

PAGE = 2000
MEMBER_HEADER = ("loyalty_id", "enrolled_by_you", "enrolled_at", "balance", "held_points", "owed_points",
                 "lifetime_points", "tier")
TRANSACTION_HEADER = ("transaction_id", "kind", "loyalty_id", "merchant_id", "points", "amount_minor", "reference",
                      "reverses_id", "recorded_at", "effective_at")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (``=HYPERLINK(...)`` in a reference a merchant
    typed) gets a leading ``'``, so it shows as text; numbers (negative points too) stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([[_cell(value) for value in row] for row in rows])
    return buffer.getvalue()


def _time(value: Any) -> str:
    return "" if value is None else value.isoformat()


async def export_members(db: Database, merchant_id: int | None) -> AsyncIterator[str]:
    """``MEMBER_HEADER`` then one line a member, oldest first."""
    yield _csv([MEMBER_HEADER])
    after = 0
    while True:
        query = select(Member.id, Member.loyalty_id, Member.enrolled_by_merchant_id, Member.created_at,
                       Member.balance, Member.held, Member.owed, Member.lifetime_points).where(Member.id > after)
        if merchant_id is not None:
            related = union(
                select(Member.id).where(Member.enrolled_by_merchant_id == merchant_id, Member.id > after),
                select(Entry.member_id).where(Entry.merchant_id == merchant_id, Entry.member_id > after),
            ).subquery()
            query = query.where(exists().where(related.c.id == Member.id))
        async with db.read() as conn:
            rows = (await conn.execute(query.order_by(Member.id).limit(PAGE))).all()
        if not rows:
            return
        after = rows[-1].id
        yield _csv([(r.loyalty_id, "yes" if merchant_id is not None and r.enrolled_by_merchant_id == merchant_id
                     else "no" if merchant_id is not None else "", _time(r.created_at), r.balance, r.held, r.owed,
                     r.lifetime_points, tier_for(r.lifetime_points)) for r in rows])


async def export_transactions(db: Database, merchant_id: int | None,
                              encode: Callable[[str, int], str]) -> AsyncIterator[str]:
    """``TRANSACTION_HEADER`` then one line an entry, in recorded order; ids as the API's global IDs."""
    yield _csv([TRANSACTION_HEADER])
    after = 0
    while True:
        query = (select(Entry.id, Entry.kind, Member.loyalty_id, Entry.merchant_id, Entry.points, Entry.amount_minor,
                        Entry.reference, Entry.reverses_id, Entry.created_at, Entry.effective_at)
                 .join(Member, Member.id == Entry.member_id).where(Entry.id > after))
        if merchant_id is not None:
            query = query.where(Entry.merchant_id == merchant_id)
        async with db.read() as conn:
            rows = (await conn.execute(query.order_by(Entry.id).limit(PAGE))).all()
        if not rows:
            return
        after = rows[-1].id
        yield _csv([(encode("Transaction", r.id), str(r.kind.value if hasattr(r.kind, "value") else r.kind),
                     r.loyalty_id, encode("Merchant", r.merchant_id) if r.merchant_id else "", r.points,
                     "" if r.amount_minor is None else r.amount_minor, r.reference or "",
                     encode("Transaction", r.reverses_id) if r.reverses_id else "", _time(r.created_at),
                     _time(r.effective_at or r.created_at)) for r in rows])
