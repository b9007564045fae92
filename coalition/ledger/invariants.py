"""The ledger's invariants (DESIGN.md), checked with set-based queries.

Used after every ledger test and by ``coalition check`` on a live database. Returns the
list of violations (empty when consistent); :func:`assert_ledger_consistent` raises.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable, Row, ScalarSelect, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from coalition.giftcards.models import GiftAccount, GiftCard, GiftEntry, GiftHold, GiftHoldStatus, GiftPosting
from coalition.ledger.models import (
    Account,
    Allocation,
    AllocationKind,
    Entry,
    EntryKind,
    Hold,
    HoldStatus,
    Lot,
    Posting,
    PresenceProof,
)
from coalition.members.models import Member


async def _rows(conn: AsyncConnection, query: Executable) -> list[Row[*tuple[Any, ...]]]:
    return list(await conn.execute(query))


async def ledger_violations(conn: AsyncConnection) -> list[str]:
    problems: list[str] = []

    # 1. Every entry's postings sum to zero.
    for row in await _rows(conn, select(Posting.entry_id, func.sum(Posting.points))
                           .group_by(Posting.entry_id).having(func.sum(Posting.points) != 0)):
        problems.append(f"entry {row[0]}: postings sum to {row[1]}, not 0")

    # 2. Member columns agree with lots, holds, postings and the history.
    lots = select(Lot.member_id, func.sum(Lot.remaining).label("open")).group_by(Lot.member_id).subquery()
    posted = select(
        Posting.account_id.label("member_id"),
        func.sum(case((Posting.account == Account.MEMBER, Posting.points), else_=0)).label("member"),
        func.sum(case((Posting.account == Account.HELD, Posting.points), else_=0)).label("held"),
        func.sum(case((Posting.account == Account.DEBT, Posting.points), else_=0)).label("debt"),
    ).where(Posting.account.in_([Account.MEMBER, Account.HELD, Account.DEBT])).group_by(Posting.account_id).subquery()
    history = select(Entry.member_id, func.sum(Entry.points).label("points")).group_by(Entry.member_id).subquery()
    open_holds = select(Hold.member_id, func.sum(Hold.points).label("held")).where(
        Hold.status == HoldStatus.AUTHORIZED).group_by(Hold.member_id).subquery()
    zero = literal(0)
    query = (
        select(
            Member.id, Member.balance, Member.held, Member.owed,
            func.coalesce(lots.c.open, zero), func.coalesce(posted.c.member, zero),
            func.coalesce(posted.c.held, zero), func.coalesce(posted.c.debt, zero),
            func.coalesce(history.c.points, zero), func.coalesce(open_holds.c.held, zero),
        )
        .outerjoin(lots, lots.c.member_id == Member.id)
        .outerjoin(posted, posted.c.member_id == Member.id)
        .outerjoin(history, history.c.member_id == Member.id)
        .outerjoin(open_holds, open_holds.c.member_id == Member.id)
    )
    for r in await _rows(conn, query):
        mid, balance, held, owed, open_, p_member, p_held, p_debt, hist, holds = r
        if balance < 0 or held < 0 or owed < 0:
            problems.append(f"member {mid}: negative column (balance {balance}, held {held}, owed {owed})")
        if balance != open_:
            problems.append(f"member {mid}: balance {balance} but open lots hold {open_}")
        if balance != p_member:
            problems.append(f"member {mid}: balance {balance} but MEMBER postings sum to {p_member}")
        if held != p_held or held != holds:
            problems.append(f"member {mid}: held {held}, HELD postings {p_held}, open holds {holds}")
        if -owed != p_debt:
            problems.append(f"member {mid}: owes {owed} but DEBT postings sum to {p_debt}")
        if hist != balance - owed:
            problems.append(f"member {mid}: history sums to {hist}, balance - owed is {balance - owed}")

    # 3. Lots: 0 <= remaining <= points, and points = remaining + everything that left it.
    sign = case(
        (Allocation.kind.in_([AllocationKind.REDEEM, AllocationKind.HOLD, AllocationKind.EXPIRY,
                              AllocationKind.REVERSAL]), Allocation.points),
        (Allocation.kind.in_([AllocationKind.RELEASE, AllocationKind.RESTORE]), -Allocation.points),
        else_=0,
    )
    moved = select(Allocation.lot_id, func.sum(sign).label("out")).group_by(Allocation.lot_id).subquery()
    for r in await _rows(conn, select(Lot.id, Lot.points, Lot.remaining, func.coalesce(moved.c.out, zero))
                         .outerjoin(moved, moved.c.lot_id == Lot.id)):
        lot_id, points, remaining, out = r
        if not 0 <= remaining <= points:
            problems.append(f"lot {lot_id}: remaining {remaining} outside 0..{points}")
        if points != remaining + out:
            problems.append(f"lot {lot_id}: {points} points but {remaining} left and {out} moved out")

    # 4. Every honored point is attributed to exactly one issuer lot.
    honored = select(Allocation.entry_id, func.sum(Allocation.points).label("pts")).where(
        Allocation.kind.in_([AllocationKind.REDEEM, AllocationKind.CAPTURE])).group_by(Allocation.entry_id).subquery()
    for r in await _rows(conn, select(Entry.id, Entry.kind, Entry.points, Hold.captured_points,
                                      func.coalesce(honored.c.pts, zero))
                         .outerjoin(honored, honored.c.entry_id == Entry.id)
                         .outerjoin(Hold, Hold.id == Entry.hold_id)
                         .where(Entry.kind.in_([EntryKind.REDEEM, EntryKind.CAPTURE]))):
        entry_id, kind, points, captured, attributed = r
        expected = -points if kind == EntryKind.REDEEM else captured
        if expected != attributed:
            problems.append(f"entry {entry_id} ({kind}): {expected} points honored, {attributed} attributed to lots")

    # 4b. Points without a merchant issuer are the network's bonuses, and bonuses are the network's.
    for r in await _rows(conn, select(Entry.id, Entry.kind, Entry.merchant_id, Lot.issuer_merchant_id)
                         .join(Lot, Lot.entry_id == Entry.id)
                         .where((Entry.kind == EntryKind.BONUS) | Lot.issuer_merchant_id.is_(None))):
        entry_id, kind, merchant_id, issuer = r
        if kind != EntryKind.BONUS or merchant_id is not None or issuer is not None:
            problems.append(f"entry {entry_id} ({kind}): merchant {merchant_id}, lot issuer {issuer}; only network "
                            "bonuses may have neither")

    # 5. Issued = outstanding + held + honored + expired + reversed - owed, network-wide.
    def total(account: Account, positive: bool | None = None) -> ScalarSelect[Any]:
        q = select(func.coalesce(func.sum(Posting.points), 0)).where(Posting.account == account)
        if positive is not None:
            q = q.where(Posting.points < 0 if positive else Posting.points > 0)
        return q.scalar_subquery()

    issued, returned, honored_total, expired = (await conn.execute(select(
        total(Account.ISSUED, positive=True), total(Account.ISSUED, positive=False),
        total(Account.HONORED), total(Account.EXPIRED),
    ))).one()
    outstanding, held_total, owed_total = (await conn.execute(select(
        func.coalesce(func.sum(Member.balance), 0), func.coalesce(func.sum(Member.held), 0),
        func.coalesce(func.sum(Member.owed), 0),
    ))).one()
    if -issued != outstanding + held_total + honored_total + expired + returned - owed_total:
        problems.append(
            f"issued {-issued} != outstanding {outstanding} + held {held_total} + honored {honored_total} + "
            f"expired {expired} + reversed {returned} - owed {owed_total}"
        )
    # 6. Each proof of presence backs one redemption or hold of its own member, at its merchant.
    for row in await _rows(conn, select(PresenceProof.entry_id, Entry.kind)
                           .join(Entry, Entry.id == PresenceProof.entry_id)
                           .where((Entry.kind.not_in([EntryKind.REDEEM, EntryKind.HOLD]))
                                  | (Entry.member_id != PresenceProof.member_id)
                                  | (Entry.merchant_id != PresenceProof.merchant_id))):
        problems.append(f"entry {row[0]} ({row[1]}): a proof of presence of another member, merchant or kind")
    problems.extend(await giftcard_violations(conn))
    return problems


async def giftcard_violations(conn: AsyncConnection) -> list[str]:
    """The money asset (gift cards): postings balance per entry and asset; every card's columns agree
    with its postings, its open holds and its history; money issued = outstanding + spent + expired."""
    problems: list[str] = []
    zero = literal(0)
    # G1. Postings sum to zero per entry and asset, and every MONEY posting is in the entry's currency.
    for row in await _rows(conn, select(GiftPosting.entry_id, GiftPosting.asset, func.sum(GiftPosting.amount_minor))
                           .group_by(GiftPosting.entry_id, GiftPosting.asset)
                           .having(func.sum(GiftPosting.amount_minor) != 0)):
        problems.append(f"gift card entry {row[0]}: {row[1]} postings sum to {row[2]}, not 0")
    for row in await _rows(conn, select(GiftPosting.entry_id).join(GiftEntry, GiftEntry.id == GiftPosting.entry_id)
                           .where(GiftPosting.currency != GiftEntry.currency)):
        problems.append(f"gift card entry {row[0]}: a posting in another currency than its entry")
    # G2. Card columns = postings = open holds = history; nothing negative.
    posted = select(
        GiftPosting.account_id.label("card_id"),
        func.sum(case((GiftPosting.account == GiftAccount.CARD, GiftPosting.amount_minor), else_=0)).label("card"),
        func.sum(case((GiftPosting.account == GiftAccount.CARD_HELD, GiftPosting.amount_minor), else_=0)).label("held"),
    ).where(GiftPosting.account.in_([GiftAccount.CARD, GiftAccount.CARD_HELD])).group_by(
        GiftPosting.account_id).subquery()
    history = select(GiftEntry.card_id, func.sum(GiftEntry.amount_minor).label("total")).group_by(
        GiftEntry.card_id).subquery()
    holds = select(GiftHold.card_id, func.sum(GiftHold.amount_minor).label("held")).where(
        GiftHold.status == GiftHoldStatus.AUTHORIZED).group_by(GiftHold.card_id).subquery()
    query = (select(GiftCard.id, GiftCard.balance_minor, GiftCard.held_minor, GiftCard.initial_minor,
                    func.coalesce(posted.c.card, zero), func.coalesce(posted.c.held, zero),
                    func.coalesce(history.c.total, zero), func.coalesce(holds.c.held, zero))
             .outerjoin(posted, posted.c.card_id == GiftCard.id)
             .outerjoin(history, history.c.card_id == GiftCard.id)
             .outerjoin(holds, holds.c.card_id == GiftCard.id))
    for card_id, balance, held, initial, p_card, p_held, hist, open_held in await _rows(conn, query):
        if balance < 0 or held < 0:
            problems.append(f"gift card {card_id}: negative column (balance {balance}, held {held})")
        if balance != p_card or held != p_held or held != open_held:
            problems.append(f"gift card {card_id}: balance {balance} / held {held}, postings {p_card} / {p_held}, "
                            f"open holds {open_held}")
        if hist != balance:
            problems.append(f"gift card {card_id}: history sums to {hist}, balance is {balance}")
        if balance + held > initial:
            problems.append(f"gift card {card_id}: holds {balance + held}, more than the {initial} it was sold for")
    # G3. Per issuer: cash taken = outstanding (balance + held) + spent + expired (the liability reconciles).
    def money(account: GiftAccount) -> ScalarSelect[Any]:
        return select(func.coalesce(func.sum(GiftPosting.amount_minor), 0)).where(
            GiftPosting.account == account).scalar_subquery()

    cash, spent, breakage = (await conn.execute(select(money(GiftAccount.CASH), money(GiftAccount.SPENT),
                                                       money(GiftAccount.BREAKAGE)))).one()
    outstanding = (await conn.execute(select(func.coalesce(
        func.sum(GiftCard.balance_minor + GiftCard.held_minor), 0)))).scalar_one()
    if -cash != outstanding + spent + breakage:
        problems.append(f"gift cards: sold {-cash} != outstanding {outstanding} + spent {spent} + expired {breakage}")
    issued = select(GiftCard.issuer_merchant_id.label("issuer"),
                    func.sum(GiftCard.initial_minor).label("sold")).group_by(GiftCard.issuer_merchant_id).subquery()
    cash_by = select(GiftPosting.account_id.label("issuer"), func.sum(GiftPosting.amount_minor).label("cash")).where(
        GiftPosting.account == GiftAccount.CASH).group_by(GiftPosting.account_id).subquery()
    for issuer, sold, taken in await _rows(conn, select(issued.c.issuer, issued.c.sold, func.coalesce(
            cash_by.c.cash, zero)).outerjoin(cash_by, cash_by.c.issuer == issued.c.issuer)):
        if sold != -taken:
            problems.append(f"merchant {issuer}: sold gift cards worth {sold} but took {-taken} in CASH postings")
    # G4. Each spend's SPENT posting equals its entry's spent_minor; refunds give back exactly one spend.
    spent_by = select(GiftPosting.entry_id, func.sum(GiftPosting.amount_minor).label("spent")).where(
        GiftPosting.account == GiftAccount.SPENT).group_by(GiftPosting.entry_id).subquery()
    for entry_id, declared, posted_spent in await _rows(conn, select(
            GiftEntry.id, GiftEntry.spent_minor, func.coalesce(spent_by.c.spent, zero))
            .outerjoin(spent_by, spent_by.c.entry_id == GiftEntry.id)
            .where(GiftEntry.spent_minor != func.coalesce(spent_by.c.spent, zero))):
        problems.append(f"gift card entry {entry_id}: spent {declared} but SPENT postings {posted_spent}")
    original = aliased(GiftEntry)
    for row in await _rows(conn, select(GiftEntry.id).join(original, original.id == GiftEntry.reverses_id).where(
            (GiftEntry.spent_minor != -original.spent_minor) | (GiftEntry.card_id != original.card_id)
            | (GiftEntry.merchant_id != original.merchant_id))):
        problems.append(f"gift card entry {row[0]}: a refund that does not mirror its spend")
    return problems


async def assert_ledger_consistent(conn: AsyncConnection) -> None:
    problems = await ledger_violations(conn)
    if problems:
        raise AssertionError("ledger inconsistent:\n  " + "\n  ".join(problems[:50]))
