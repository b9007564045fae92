"""What the merchant console shows: a merchant's figures over time, its customers, a member found at the till.

Only this merchant's rows are read: its members are those it enrolled or has a transaction
with (as in :mod:`coalition.members.relations`); a member found by contact details at the
till is anyone in the network (the cashier has the customer in front of them), but the
customers page and a customer's history list this merchant's own only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import case, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.console.rollup import TOTALS, member_sums, read_mark, total_changes
from coalition.console.rollup_models import DashboardMerchant, DashboardWeek
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.errors import InvalidInput
from coalition.ledger.errors import MemberNotFound
from coalition.ledger.inputs import parse_loyalty_id
from coalition.ledger.models import Entry, EntryKind, Lot
from coalition.members.models import Member
from coalition.members.relations import related_member_ids
from coalition.members.service import normalize_email, normalize_phone
from coalition.partners.models import Merchant
from coalition.settlement.models import SettlementBatch, SettlementPosition

WEEKS = 12


@dataclass(frozen=True)
class Week:
    start: dt.datetime  # Monday 00:00 UTC: the dashboard counts UTC weeks
    issued: int
    honored: int

    @property
    def monday(self) -> dt.date:
        """The day to name the week by, in every time zone (its start on a clock west of UTC is Sunday)."""
        return self.start.date()


@dataclass(frozen=True)
class Dashboard:
    members: int
    points_issued: int
    points_honored: int
    outstanding: int  # points this merchant issued that members still hold (unspent, unexpired lots)
    redemption_rate: Decimal  # honored here / issued here, 0 when nothing was issued
    repeat_rate: Decimal  # members with two or more purchases here / members with one or more
    weeks: list[Week]


def _rate(part: int, whole: int) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")) if whole else Decimal(0)


async def merchant_dashboard(db: Database, merchant_id: int, *, now: dt.datetime | None = None) -> Dashboard:
    """The merchant's figures: the worker's rollup plus the entries not rolled up yet (:mod:`coalition.console.rollup`).

    Read in one snapshot (REPEATABLE READ on PostgreSQL; SQLite's read transaction is one), so
    the mark, the rolled-up rows and the tail after the mark agree: each entry counts once. The
    members it enrolled but never served are those it enrolled (counted from
    ``ix_members_enrolled_by_merchant_id``) less the served ones it enrolled; the points it
    issued that members still hold (lots) are read live."""
    now = now or utcnow()
    async with db.read() as conn:
        if conn.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        through = (await read_mark(conn)).rolled_through_id
        served, served_enrolled, buyers, repeat, issued, honored = await _member_figures(conn, merchant_id, through)
        weeks = await _weeks(conn, merchant_id, through, now)
        enrolled = (await conn.execute(select(func.count()).select_from(Member).where(
            Member.enrolled_by_merchant_id == merchant_id))).scalar_one()
        outstanding = (await conn.execute(select(func.coalesce(func.sum(Lot.remaining), 0)).where(
            Lot.issuer_merchant_id == merchant_id, Lot.expires_at > now))).scalar_one()
    enrolled_only = int(enrolled) - served_enrolled  # enrolled here, never served here
    return Dashboard(served + enrolled_only, issued, honored, int(outstanding), _rate(honored, issued),
                     _rate(repeat, buyers), weeks)


async def _member_figures(conn: AsyncConnection, merchant_id: int, through: int) -> list[int]:
    """Members served, those of them the merchant enrolled, buyers, repeat buyers, points issued, honored.

    The merchant's totals in the rollup, plus its tail (its entries after the mark, from
    ``ix_entries_merchant_id_id``) summed per member and joined to those members' rolled-up
    rows, which tell whether the tail makes a member new here, a buyer or a repeat buyer."""
    tail = member_sums([Entry.merchant_id == merchant_id, Entry.id > through]).subquery("tail")
    changes, joined = total_changes(tail)
    more = (await conn.execute(select(*(func.coalesce(func.sum(c), 0) for c in changes)).select_from(joined))).one()
    totals = (await conn.execute(select(*(getattr(DashboardMerchant, name) for name in TOTALS))
                                 .where(DashboardMerchant.merchant_id == merchant_id))).first() or (0,) * len(TOTALS)
    return [int(total) + int(tail_part) for total, tail_part in zip(totals, more, strict=True)]


async def _weeks(conn: AsyncConnection, merchant_id: int, through: int, now: dt.datetime) -> list[Week]:
    """The last :data:`WEEKS` weeks (UTC, from Monday) up to ``now``'s: the rolled-up weeks plus the tail's."""
    monday = (now - dt.timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [monday - dt.timedelta(weeks=WEEKS - 1 - i) for i in range(WEEKS)]
    bounds = [*starts, monday + dt.timedelta(weeks=1)]
    sums = [[0, 0] for _ in range(WEEKS)]
    rolled = (await conn.execute(
        select(DashboardWeek.week_start, DashboardWeek.issued, DashboardWeek.honored)
        .where(DashboardWeek.merchant_id == merchant_id, DashboardWeek.week_start >= bounds[0],
               DashboardWeek.week_start < bounds[-1]))).all()
    earn, redeem = Entry.kind == EntryKind.EARN, Entry.kind == EntryKind.REDEEM
    week = case(*[(Entry.created_at < bounds[i + 1], i) for i in range(WEEKS)], else_=WEEKS).label("week")
    tail = (await conn.execute(
        select(week, func.sum(case((earn, Entry.points), else_=0)), func.sum(case((redeem, -Entry.points), else_=0)))
        .where(Entry.merchant_id == merchant_id, Entry.id > through, Entry.created_at >= bounds[0], or_(earn, redeem))
        .group_by(week))).all()
    rows = [((start - bounds[0]).days // 7, issued, honored) for start, issued, honored in rolled]
    for i, issued, honored in [*rows, *tail]:
        if int(i) < WEEKS:  # the tail's entries dated after this week are left out
            sums[int(i)][0] += int(issued)
            sums[int(i)][1] += int(honored)
    return [Week(starts[i], issued, honored) for i, (issued, honored) in enumerate(sums)]


@dataclass(frozen=True)
class Customer:
    member_id: int
    loyalty_id: str
    balance: int
    last_seen: dt.datetime | None
    visits: int


async def merchant_customers(db: Database, merchant_id: int, *, after_id: int | None, limit: int) -> list[Customer]:
    """This merchant's customers by member id (those it enrolled or served), ``limit`` after ``after_id``.

    A keyset page: each side reads at most ``limit`` ids from its index, whatever the page's depth."""
    served = select(Entry.member_id.label("id")).where(Entry.merchant_id == merchant_id)
    enrolled = select(Member.id.label("id")).where(Member.enrolled_by_merchant_id == merchant_id)
    if after_id is not None:
        served = served.where(Entry.member_id > after_id)
        enrolled = enrolled.where(Member.id > after_id)
    first_served = served.group_by(Entry.member_id).order_by(Entry.member_id).limit(limit).subquery()
    first_enrolled = enrolled.order_by(Member.id).limit(limit).subquery()
    own = union(select(first_served.c.id), select(first_enrolled.c.id)).subquery()
    async with db.read() as conn:
        wanted = [int(row[0]) for row in (await conn.execute(select(own.c.id).order_by(own.c.id).limit(limit))).all()]
        if not wanted:
            return []
        members = {row.id: row for row in (await conn.execute(
            select(Member.id, Member.loyalty_id, Member.balance).where(Member.id.in_(wanted)))).all()}
        seen = {row.member_id: row for row in (await conn.execute(
            select(Entry.member_id, func.max(Entry.created_at).label("last"),
                   func.sum(case((Entry.kind == EntryKind.EARN, 1), else_=0)).label("visits"))
            .where(Entry.merchant_id == merchant_id, Entry.member_id.in_(wanted)).group_by(Entry.member_id))).all()}
    return [Customer(i, members[i].loyalty_id, int(members[i].balance),
                     seen[i].last if i in seen else None, int(seen[i].visits) if i in seen else 0) for i in wanted]


async def is_customer(db: Database, merchant_id: int, member_id: int) -> bool:
    return bool(await related_member_ids(db, merchant_id, [member_id]))


async def find_at_till(db: Database, keys: NetworkKeys, query: str) -> Member:
    """The member a cashier names: a loyalty ID, or an exact e-mail or phone number (through the blind index)."""
    text = query.strip()
    if not text or len(text) > 254:
        raise InvalidInput("type a loyalty ID, an e-mail address or a phone number", code="INVALID_QUERY")
    if "@" in text:
        condition = Member.email_index == keys.blind_index("email", normalize_email(text) or "")
    else:
        try:
            condition = Member.loyalty_id == parse_loyalty_id(text)
        except InvalidInput:
            condition = Member.phone_index == keys.blind_index("phone", normalize_phone(text) or "")
    async with db.session() as session:
        member = (await session.execute(select(Member).where(condition))).scalar_one_or_none()
    if member is None:
        raise MemberNotFound("no member matches", field="query")
    return member



@dataclass(frozen=True)
class StatementLine:
    batch_id: int
    seq: int
    period_start: dt.datetime
    period_end: dt.datetime
    due: dt.datetime
    net_minor: int  # > 0: the network pays the merchant; < 0: the merchant pays the network
    points_issued: int
    points_honored: int
    charges_minor: int
    reimbursements_minor: int


async def merchant_statements(db: Database, merchant_id: int, *, due_days: int, limit: int = 24
                              ) -> list[StatementLine]:
    """The merchant's positions in the newest batches: what it owes or is owed, and by when."""
    async with db.read() as conn:
        rows = (await conn.execute(
            select(SettlementBatch.id, SettlementBatch.seq, SettlementBatch.period_start, SettlementBatch.period_end,
                   SettlementPosition.net_minor, SettlementPosition.points_issued, SettlementPosition.points_honored,
                   SettlementPosition.charges_minor, SettlementPosition.reimbursements_minor)
            .join(SettlementPosition, SettlementPosition.batch_id == SettlementBatch.id)
            .where(SettlementPosition.merchant_id == merchant_id)
            .order_by(SettlementBatch.id.desc()).limit(limit))).all()
    return [StatementLine(r.id, r.seq, r.period_start, r.period_end, r.period_end + dt.timedelta(days=due_days),
                          int(r.net_minor), int(r.points_issued), int(r.points_honored), int(r.charges_minor),
                          int(r.reimbursements_minor)) for r in rows]


async def loyalty_ids(db: Database, member_ids: list[int]) -> dict[int, str]:
    if not member_ids:
        return {}
    async with db.read() as conn:
        rows = (await conn.execute(select(Member.id, Member.loyalty_id).where(Member.id.in_(set(member_ids))))).all()
    return {int(row.id): row.loyalty_id for row in rows}


async def own_members(db: Database, merchant_id: int, member_ids: list[int]) -> list[int]:
    """The members among ``member_ids`` that are ``merchant_id``'s customers, in order."""
    if not member_ids:
        return []
    related = await related_member_ids(db, merchant_id, member_ids)
    return sorted(related)


async def merchant_names(db: Database, merchant_ids: list[int]) -> dict[int, str]:
    if not merchant_ids:
        return {}
    async with db.read() as conn:
        rows = (await conn.execute(select(Merchant.id, Merchant.name).where(Merchant.id.in_(set(merchant_ids))))).all()
    return {int(row.id): row.name for row in rows}


@dataclass(frozen=True)
class NetworkHealth:
    merchants_active: int
    merchants_suspended: int
    members: int
    points_outstanding: int
    points_owed: int  # members' debts after reversals
    last_batch: SettlementBatch | None


async def network_health(db: Database) -> NetworkHealth:
    async with db.read() as conn:
        by_status = {str(status): int(n) for status, n in (await conn.execute(
            select(Merchant.status, func.count()).group_by(Merchant.status))).all()}
        members, balance, held, owed = (await conn.execute(select(
            func.count(), func.coalesce(func.sum(Member.balance), 0), func.coalesce(func.sum(Member.held), 0),
            func.coalesce(func.sum(Member.owed), 0)))).one()
    async with db.session() as session:
        last = (await session.execute(select(SettlementBatch).order_by(SettlementBatch.id.desc()).limit(1))
                ).scalar_one_or_none()
    return NetworkHealth(int(by_status.get("ACTIVE", 0)), int(by_status.get("SUSPENDED", 0)), int(members),
                         int(balance) + int(held), int(owed), last)


@dataclass(frozen=True)
class WalletLine:
    merchant_id: int
    name: str
    category: str | None
    active: bool


async def partner_directory(db: Database, limit: int = 500) -> list[WalletLine]:
    """The network's active partners, by name: where a member can earn and spend."""
    async with db.read() as conn:
        rows = (await conn.execute(select(Merchant.id, Merchant.name, Merchant.category, Merchant.status)
                                   .where(Merchant.status == "ACTIVE").order_by(Merchant.name).limit(limit))).all()
    return [WalletLine(int(r.id), r.name, r.category, True) for r in rows]
