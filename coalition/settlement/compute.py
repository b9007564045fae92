"""A batch's window of ledger entries, read in the database as the aggregates pricing needs.

The window is the entries with ``after_entry_id < id <= through_entry_id``. :func:`read_window`
is the query: a handful of ``GROUP BY`` queries over the attribution rows (allocations, ISSUED
postings) bring back one row per (policy version, issuer, redeemer), as plain values in a
:class:`~coalition.settlement.pricing.WindowRows`; :func:`read_settlement_window` adds the gift
card money. :func:`~coalition.settlement.pricing.price_window` prices only those rows, without the
database (the pricing table and the rounding rule are in :mod:`coalition.settlement.pricing`).
Everything here reads, never writes: the run (:mod:`coalition.settlement.service`) prices the rows
and keeps them with its batch (:mod:`coalition.settlement.windows`), the what-if
(:mod:`coalition.settlement.whatif`) prices them twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from coalition.config import Settings
from coalition.giftcards.models import GiftEntry
from coalition.ledger.idempotency import internal_key
from coalition.ledger.models import Account, Allocation, AllocationKind, Entry, EntryKind, Posting
from coalition.ledger.program_earns import ATTACHED_BONUS_PREFIX
from coalition.programs.reward_models import Voucher
from coalition.programs.tier_models import EarnBonus
from coalition.settlement.models import ProgramCost, SettlementBatch
from coalition.settlement.policy import Policy
from coalition.settlement.pricing import Line, MerchantFigures, SettlementFigures, WindowRows

# Line and MerchantFigures are re-exported for the callers that imported them from here.
__all__ = ["STEPS", "Line", "MerchantFigures", "Progress", "SettlementFigures", "read_settlement_window",
           "read_window"]

Progress = Callable[[str, int, int], None]
STEPS = 5


def _version_index(versions: Sequence[Policy], column: Any) -> ColumnElement[Any]:
    """SQL for the index (into ``versions``) of the version in force at ``column``.

    :func:`coalition.settlement.pricing.index_at` makes the same choice in Python (for reversals).
    """
    if len(versions) == 1:
        return literal(0)
    whens = [(column < versions[k + 1].effective_from, k) for k in range(len(versions) - 1)]
    return case(*whens, else_=len(versions) - 1)


def _ordinals(n: int) -> list[ColumnElement[Any]]:
    # GROUP BY 1, 2, ...: PostgreSQL cannot tell that a CASE with bound timestamps in the
    # select list equals the same CASE (other parameters) in GROUP BY.
    return [literal_column(str(k)) for k in range(1, n + 1)]


async def _all_rows(conn: AsyncConnection, query: Select[Any]) -> Sequence[Sequence[Any]]:
    """Every row of ``query``, as plain sequences (kinds as their string values).

    PostgreSQL: straight from asyncpg. The matrix query returns a row per issuer x redeemer
    cell (10^5 and more), and SQLAlchemy's result rows cost about as much again as reading
    them (docs/benchmarks-journal.md, "Settlement"). The statement is rendered with its values inlined:
    only integers and timestamps the server itself holds (window bounds, policy dates).
    """
    if conn.dialect.name != "postgresql":
        return list(await conn.execute(query))
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    raw = await conn.get_raw_connection()
    records: Sequence[Sequence[Any]] = await raw.driver_connection.fetch(sql)  # type: ignore[union-attr]
    return records


async def _originals(conn: AsyncConnection, reversal_ids: set[int]) -> dict[int, tuple[int, dt.datetime]]:
    """reversal entry id -> (original entry id, its created_at); reversals are few."""
    found: dict[int, tuple[int, dt.datetime]] = {}
    ids = sorted(reversal_ids)
    original = aliased(Entry)
    for start in range(0, len(ids), 1000):
        rows = await conn.execute(
            select(Entry.id, original.id, original.created_at)
            .join(original, original.id == Entry.reverses_id).where(Entry.id.in_(ids[start:start + 1000])))
        for rev, orig, at in rows:
            found[rev] = (orig, at)
    return found


def _in_window(column: Any, after: int, through: int) -> ColumnElement[bool]:
    # Integers inlined (never user text): the planner then sees the real range, not a generic one.
    return and_(column > literal_column(str(int(after))), column <= literal_column(str(int(through))))


async def read_settlement_window(conn: AsyncConnection, settings: Settings, versions: Sequence[Policy],
                                 after_entry_id: int, through_entry_id: int, gift_window: tuple[int, int] | None,
                                 progress: Progress | None = None) -> WindowRows:
    """What a run prices (and keeps, :mod:`coalition.settlement.windows`): the window's points
    aggregates (:func:`read_window`) and, with ``gift_window``, its gift card money."""
    rows = await read_window(conn, versions, after_entry_id, through_entry_id, progress)
    return rows if gift_window is None else await with_gift_cards(conn, settings, rows, gift_window)


async def with_gift_cards(conn: AsyncConnection, settings: Settings, rows: WindowRows,
                          gift_window: tuple[int, int]) -> WindowRows:
    """``rows`` with the gift card money spent in the gift card entries ``(after, through]``: a run's
    window settles both, and the what-if shows both (gift card money does not depend on the points policy)."""
    return dataclasses.replace(
        rows, after_gift_entry_id=gift_window[0], through_gift_entry_id=gift_window[1],
        gift_spent=await read_gift_spent(conn, *gift_window), gift_fee_rate=Decimal(settings.gift_card_fee_rate))


async def read_window(conn: AsyncConnection, versions: Sequence[Policy], after_entry_id: int,
                      through_entry_id: int, progress: Progress | None = None) -> WindowRows:
    """The window's aggregates, read in the database, for :func:`~coalition.settlement.pricing.price_window`."""
    lo, hi = after_entry_id, through_entry_id

    def step(name: str, done: int) -> None:
        if progress is not None:
            progress(name, done, STEPS)

    allocations = await _allocated(conn, versions, lo, hi)
    restores = await _restored(conn, lo, hi)
    step("allocations", 1)
    issued = await _issued(conn, versions, lo, hi)
    step("issued", 2)
    originals = await _originals(conn, {r[2] for r in restores} | {r[2] for r in issued if r[2] is not None})
    # Batches are read only when a reversal's original was settled before: its ADJUSTMENT line names that batch.
    batches = await _batches(conn) if any(orig <= lo for orig, _ in originals.values()) else []
    step("reversals", 3)
    programs = await _program_costs(conn, versions, lo, hi)
    step("expiries", 4)
    return WindowRows(lo, hi, versions, allocations, restores, issued, originals, batches, programs=programs)


QUEST_BONUS_PREFIX = internal_key("quest", "")  # coalition/programs/quests.py keys its bonuses so


async def _program_costs(conn: AsyncConnection, versions: Sequence[Policy], lo: int,
                         hi: int) -> list[tuple[int, int | None, int | None, ProgramCost, int]]:
    """The window's program costs (``WindowRows.programs``), of transactions not reversed in the window.

    Campaign and merchant-funded tier points from ``earn_bonuses`` (the tier's are in the earn's own points
    unless the network funded them); the network's tier bonuses and quest bonuses are BONUS entries under
    their keys; voucher points are the REDEEM allocations of a voucher's claim. A few small queries: the
    programs' rows are a fraction of the window's.
    """
    reversal = aliased(Entry)

    def kept(entry_id: Any) -> ColumnElement[bool]:
        return ~exists().where(reversal.reverses_id == entry_id, reversal.id <= literal_column(str(int(hi))))

    out: list[tuple[int, int | None, int | None, ProgramCost, int]] = []
    in_earn = (Entry.points == EarnBonus.base_points + EarnBonus.tier_points + EarnBonus.campaign_points)
    rows = await conn.execute(
        select(_version_index(versions, Entry.created_at).label("v"), EarnBonus.merchant_id,
               func.sum(EarnBonus.campaign_points), func.sum(case((in_earn, EarnBonus.tier_points), else_=0)))
        .join(Entry, Entry.id == EarnBonus.entry_id)
        .where(_in_window(EarnBonus.entry_id, lo, hi), kept(Entry.id)).group_by(*_ordinals(2)))
    for v, merchant, campaign, tier in rows:
        for program, points in ((ProgramCost.CAMPAIGN, campaign), (ProgramCost.TIER, tier)):
            if points:
                out.append((int(v), int(merchant), None, program, int(points)))
    tier_bonus = Entry.idempotency_key.like(f"{ATTACHED_BONUS_PREFIX}%")
    rows = await conn.execute(
        select(_version_index(versions, Entry.created_at).label("v"), Entry.merchant_id,
               case((tier_bonus, ProgramCost.TIER.value), else_=ProgramCost.QUEST.value), func.sum(Entry.points))
        .where(Entry.kind == EntryKind.BONUS, _in_window(Entry.id, lo, hi), kept(Entry.id),
               or_(tier_bonus, Entry.idempotency_key.like(f"{QUEST_BONUS_PREFIX}%")))
        .group_by(*_ordinals(3)))
    out += [(int(v), funder, None, ProgramCost(program), int(points)) for v, funder, program, points in rows]
    rows = await conn.execute(
        select(_version_index(versions, Allocation.created_at).label("v"), Allocation.issuer_merchant_id,
               Allocation.merchant_id, func.sum(Allocation.points))
        .join(Voucher, Voucher.redeem_entry_id == Allocation.entry_id)
        .where(Allocation.kind == AllocationKind.REDEEM, _in_window(Allocation.entry_id, lo, hi),
               kept(Allocation.entry_id))
        .group_by(*_ordinals(3)))
    out += [(int(v), issuer, int(redeemer), ProgramCost.VOUCHER, int(points)) for v, issuer, redeemer, points in rows]
    return out


async def _allocated(conn: AsyncConnection, versions: Sequence[Policy], lo: int, hi: int) -> Sequence[Sequence[Any]]:
    """One pass over the window's allocations, shaped like a bare issuer x redeemer GROUP BY.

    Points honored (REDEEM, CAPTURE) and expired (EXPIRY: the one kind without a merchant,
    a CHECK on the table) per issuer and merchant; grouping by kind as well cost 10-25 %
    more (docs/benchmarks-journal.md, "Settlement"). HOLD and RELEASE move no money, REVERSAL is read
    from the ISSUED postings and RESTORE per reversal (:func:`_restored`).
    """
    columns: list[Any] = [Allocation.issuer_merchant_id, Allocation.merchant_id]
    if len(versions) > 1:
        columns.append(_version_index(versions, Allocation.created_at).label("v"))
    money = Allocation.kind.in_([AllocationKind.REDEEM, AllocationKind.CAPTURE, AllocationKind.EXPIRY])
    return await _all_rows(conn, (
        select(*columns, cast(func.sum(Allocation.points), BigInteger).label("points"))  # not numeric: no Decimals
        .where(money, _in_window(Allocation.entry_id, lo, hi)).group_by(*_ordinals(len(columns)))
    ))


async def _restored(conn: AsyncConnection, lo: int, hi: int) -> list[tuple[int | None, int | None, int, int]]:
    """Reversed redemptions (RESTORE), per reversal entry, through the small partial index."""
    rows = await conn.execute(
        select(Allocation.issuer_merchant_id, Allocation.merchant_id, Allocation.entry_id, func.sum(Allocation.points))
        .where(Allocation.kind == AllocationKind.RESTORE, _in_window(Allocation.entry_id, lo, hi))
        .group_by(*_ordinals(3)))
    return [(issuer, redeemer, rev, int(total)) for issuer, redeemer, rev, total in rows]


async def _issued(conn: AsyncConnection, versions: Sequence[Policy], lo: int,
                  hi: int) -> list[tuple[int, int | None, int | None, int]]:
    """Points issued: ISSUED postings (earns < 0; reversals of earns > 0, kept per reversal).

    account_id NULL is the network. The entry's time is needed only under several versions.
    """
    returned_by = case((Posting.points > 0, Posting.entry_id), else_=None).label("rev")
    issue_filter = (Posting.account == Account.ISSUED, _in_window(Posting.entry_id, lo, hi))
    if len(versions) == 1:
        query = select(literal(0).label("v"), Posting.account_id, returned_by, func.sum(Posting.points))
    else:
        query = (select(_version_index(versions, Entry.created_at).label("v"), Posting.account_id, returned_by,
                        func.sum(Posting.points)).join(Entry, Entry.id == Posting.entry_id))
    rows = await conn.execute(query.where(*issue_filter).group_by(*_ordinals(3)))
    return [(int(v), issuer, rev, int(total)) for v, issuer, rev, total in rows]


async def read_gift_spent(conn: AsyncConnection, lo: int,
                          hi: int) -> list[tuple[int, int, int, int | None, int | None]]:
    """Gift card money spent per (issuer, redeemer) in the entries ``(lo, hi]``, net of refunds of spends in
    the same window; a refund of a spend settled before (``reverses_id <= lo``) is kept on its own."""
    late = GiftEntry.reverses_id.is_not(None) & (GiftEntry.reverses_id <= literal_column(str(int(lo))))
    where = (_in_window(GiftEntry.id, lo, hi), GiftEntry.spent_minor != 0, GiftEntry.merchant_id.is_not(None))
    rows = await conn.execute(select(GiftEntry.issuer_merchant_id, GiftEntry.merchant_id, func.sum(
        GiftEntry.spent_minor)).where(*where, ~late).group_by(GiftEntry.issuer_merchant_id, GiftEntry.merchant_id))
    spent: list[tuple[int, int, int, int | None, int | None]] = []
    for i, r, total in rows:
        assert r is not None  # the query takes entries with a merchant only
        spent.append((int(i), int(r), int(total), None, None))
    for i, r, total, rev, orig in await conn.execute(select(
            GiftEntry.issuer_merchant_id, GiftEntry.merchant_id, GiftEntry.spent_minor, GiftEntry.id,
            GiftEntry.reverses_id).where(*where, late).order_by(GiftEntry.id)):
        assert r is not None and orig is not None
        spent.append((int(i), int(r), int(total), int(rev), int(orig)))
    return spent


async def _batches(conn: AsyncConnection) -> list[tuple[int, int]]:
    """(through_entry_id, id) of every batch; empty batches share their through id with the
    one before, and this order puts the earliest (the one that settled it) first."""
    rows = await conn.execute(select(SettlementBatch.through_entry_id, SettlementBatch.id)
                              .order_by(SettlementBatch.through_entry_id, SettlementBatch.seq))
    return [(through, batch_id) for through, batch_id in rows]
