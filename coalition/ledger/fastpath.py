"""PostgreSQL only: plain earns or redemptions, many at a time, as one statement and transaction.

The multi-statement code in ``purchases.py`` is the ledger's definition of an earn and a
redemption; SQLite runs only that. On PostgreSQL each operation first tries one
data-modifying CTE that does the whole common case in one round trip: the entry, the
member's counters, the lot (earn) or the lot decrements and their allocations, soonest
expiry first then lot id (redeem), and postings that sum to zero. The statement takes a
batch: the operations of one kind that arrive while earlier statements of that kind run go
together in the next (:class:`FastPath`, :mod:`coalition.ledger.batching`), at most one per
member. It runs without BEGIN and COMMIT on a pooled asyncpg connection
(``Database.driver_connection``): PostgreSQL runs a lone statement as a transaction of its
own. One statement per batch instead of one per earn more than halves the CPU an earn costs
in the worker and in PostgreSQL under load (docs/benchmarks-journal.md, finding 8). Anything unusual
makes the statement leave that operation out, or fail, which undoes the whole batch; each
operation left out then runs again on the multi-statement path, which gives the result or
error it always gave.

Unusual: the idempotency key already used (a retry, a conflict or a kept refusal), a
redemption beyond the allowance without proof of presence, a proof used before (it fails
the batch) or after too many wrong ones, the merchant not
active, no such member, a member someone referred (referral bonuses), a member who owes
points, a balance that would pass ``MAX_POINTS``, too few points, an earn of no whole
point, and (failing the batch) any change to a member row since the statement's snapshot.

Concurrency. Under READ COMMITTED every CTE reads the statement's snapshot; only an
UPDATE that meets a row changed since then looks at the newest version, and it re-checks
just its own WHERE there. The lots a CTE reads can therefore be stale. So the statement
reads each member's ``xmin`` (the transaction that wrote the row version) in the snapshot
and updates the member only ``WHERE xmin`` is still that: every ledger write that changes
a member's lots also UPDATEs the member row, under that row's lock, in the same
transaction (redeem, authorize, capture, void, hold expiry, reversals, lot expiry, earns
and bonuses; ``tests/ledger/test_ledger_fastpath.py`` checks each), so an unchanged
``xmin`` means the lots read in the snapshot are the lots as they are, and they stay so
while the statement holds the member's row lock. Everything written after the member
UPDATE (lot, lot decrements, allocations, postings) is joined to its RETURNING, so for a
member it missed nothing else is written; the entries, inserted before it, are undone by
the final SELECT, which divides by zero unless every entry has its own updated member.
The CHECK constraints stay the last line: one firing fails the statement like the rest.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, ColumnElement, Integer, literal_column

from coalition.db import Database
from coalition.ledger import rules
from coalition.ledger.batch_sql import (
    NumberedSql,
    column_list,
    fetch_batch,
    number_parameters,
    outbox_cte,
    sql_literal,
)
from coalition.ledger.batching import Batcher
from coalition.ledger.core import entry_change
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
    Refusal,
)
from coalition.ledger.presence import MAX_WRONG_PROOFS, WRONG_PROOF_WINDOW, InvalidMemberProof
from coalition.ledger.rules import render
from coalition.members.models import Member
from coalition.partners.models import Merchant
from coalition.programs.campaign_models import Campaign, CampaignAudience
from coalition.programs.tier_models import EarnBonus, MemberTier

_MEMBER_COLUMNS = tuple(Member.__table__.columns)
_RETURNING = ", ".join(f"m.{c.name}" for c in _MEMBER_COLUMNS)
_UPDATED = ", ".join(f"u.{c.name}" for c in _MEMBER_COLUMNS)

# The SQL below names tables and columns through the models and writes every enum value the
# way its column stores it, so a rename or a new spelling fails here, not in production.
_ENTRIES, _MEMBERS, _MERCHANTS, _LOTS = (Entry.__tablename__, Member.__tablename__, Merchant.__tablename__,
                                         Lot.__tablename__)
_POSTINGS, _ALLOCATIONS, _HOLDS = Posting.__tablename__, Allocation.__tablename__, Hold.__tablename__
_PROOFS, _REFUSALS = PresenceProof.__tablename__, Refusal.__tablename__


def _col(name: str, type_: Any = BigInteger) -> ColumnElement[Any]:
    return literal_column(name, type_)


_ENTRY_KIND = {kind: sql_literal(Entry.kind, kind) for kind in (EntryKind.EARN, EntryKind.REDEEM)}
_ACCOUNT = {account: sql_literal(Posting.account, account) for account in Account}
_HOLD_STATUS = {status: sql_literal(Hold.status, status) for status in HoldStatus}
_REDEEM_ALLOCATION = sql_literal(Allocation.kind, AllocationKind.REDEEM)
_WRONG_PROOF_CODE = sql_literal(Refusal.code, InvalidMemberProof.code)
_FIFO = ", ".join(f"l.{name}" for name in rules.FIFO_ORDER)
_FIFO_AFTER_WALK = f"({_FIFO}) > ({', '.join(f'w.{name}' for name in rules.FIFO_ORDER)})"
# The merchant may write (rules.merchant_may_write), on the alias ``mc``.
_MERCHANT_MAY_WRITE = render(rules.merchant_may_write(Merchant.__table__.alias("mc").c.status))
# An earn's points (rules.earn_points) from the request ``r`` and the merchant ``mc``.
_EARN_POINTS = render(rules.earn_points(_col("r.amount_minor"), _col("mc.earn_rate_points_per_unit", Integer),
                                        _col("r.minor_per_unit")))


def _within_max_points(balance: str, points: str) -> str:
    return render(rules.within_max_points(_col(balance), _col(points)))


def _may_debit(member: str, points: str) -> str:
    return render(rules.may_debit(_col(f"{member}.balance"), _col(f"{member}.owed"), _col(points)))


def _legs(legs: tuple[rules.Leg, ...], member: str, merchant: str) -> tuple[str, str]:
    """A movement's postings (``rules.EARN_LEGS``, ``rules.REDEEM_LEGS``): the VALUES list of
    ``(n, account, sign)`` and the CASE that picks each leg's account id."""
    values = ", ".join(f"({n}, {_ACCOUNT[leg.account]}, {leg.sign})" for n, leg in enumerate(legs, start=1))
    whens = " ".join(f"WHEN {_ACCOUNT[leg.account]} THEN {member if leg.of_member else merchant}" for leg in legs)
    return values, f"CASE leg.account {whens} END"


_EARN_LEG_VALUES, _EARN_LEG_HOLDER = _legs(rules.EARN_LEGS, "u.id", "es.merchant_id")
_REDEEM_LEG_VALUES, _REDEEM_LEG_HOLDER = _legs(rules.REDEEM_LEGS, "u.id", "es.merchant_id")


# Every statement takes a batch: each parameter is an array with one value per operation, and
# ``req`` numbers the operations (``n``, from 1). ``e`` returns the entries inserted (an
# operation whose key is taken inserts none), ``es`` ties each to its operation. Both statements
# end alike: one row per inserted entry with its operation's number and the updated member, or,
# when some entry went in without its own member update, a division by zero that fails the
# statement and so undoes every entry of the batch. ``es`` is in member id order, and the
# member UPDATE reads it in that order, so two batches lock their common members in one order
# (no deadlock between two processes' batches).
_RESULT = f"""SELECT es.n, e.id AS entry_id, e.points AS entry_points, {_UPDATED},
       1 / CAST((SELECT count(*) FROM u) = (SELECT count(*) FROM e)
                AND (SELECT count(*) FROM es) = (SELECT count(*) FROM e) AS int) AS applied
FROM e LEFT JOIN es ON es.id = e.id LEFT JOIN u ON u.id = es.member_id
"""

# A key under which a refusal is kept (ledger/refusals.py) is left to the multi-statement path,
# which raises the refusal again: one probe of the (small) refusals table's unique index.
_NOT_REFUSED = f"""NOT EXISTS (SELECT 1 FROM {_REFUSALS} f
                  WHERE f.merchant_id = r.merchant_id AND f.idempotency_key = r.idempotency_key)"""
# What this merchant took from the member in the last 24 h without proof of presence, as
# ``presence.used_without_proof`` reads it: a redemption beyond the allowance is left to the
# multi-statement path, which refuses it (MEMBER_PROOF_REQUIRED). Read in the snapshot like the
# lots, so the member's ``xmin`` guards it the same way: every redemption, hold, capture and void
# updates the member row.
_USED_WITHOUT_PROOF = f"""(
    (SELECT coalesce(sum(-x.points), 0) FROM {_ENTRIES} x
     WHERE x.member_id = m.id AND x.merchant_id = r.merchant_id AND x.kind = {_ENTRY_KIND[EntryKind.REDEEM]}
       AND x.created_at > r.since AND NOT EXISTS (SELECT 1 FROM {_PROOFS} p WHERE p.entry_id = x.id))
  + (SELECT coalesce(sum(CASE h.status WHEN {_HOLD_STATUS[HoldStatus.AUTHORIZED]} THEN h.points
                                       WHEN {_HOLD_STATUS[HoldStatus.CAPTURED]} THEN coalesce(h.captured_points, 0)
                                       ELSE 0 END), 0) FROM {_HOLDS} h
     WHERE h.member_id = m.id AND h.merchant_id = r.merchant_id AND h.created_at > r.since
       AND NOT EXISTS (SELECT 1 FROM {_PROOFS} p WHERE p.entry_id = h.id)))"""

# Wrong proofs of presence this merchant sent for the member in the last hour: at
# ``presence.MAX_WRONG_PROOFS`` even a right one goes to the multi-statement path, which refuses it.
_WRONG_PROOFS = f"""(SELECT count(*) FROM {_REFUSALS} w
    WHERE w.member_id = m.id AND w.merchant_id = r.merchant_id AND w.code = {_WRONG_PROOF_CODE}
      AND w.created_at > r.now - interval '{int(WRONG_PROOF_WINDOW.total_seconds())} seconds')"""

# Points programs add to an earn (coalition.programs: tiers, campaigns), in the earn's own entry and
# lot, funded by the earning merchant: the member's kept tier multiplier (one probe of member_tiers'
# primary key) and the treated member's active campaigns of this merchant (one probe of
# campaign_audience), each only when the process's cache says they apply (``tiers``, ``campaigns``),
# so a plain earn pays nothing. ``base * (pct - 100) / 100`` on non-negative integers rounds down, as
# ``coalition.programs.tiers.extra_points`` does.
_TIERS, _CAMPAIGNS, _AUDIENCE = MemberTier.__tablename__, Campaign.__tablename__, CampaignAudience.__tablename__
_PROGRAM_POINTS = f"""snap AS (
    SELECT b.*, x.tier_points, x.campaign_points, b.base + x.tier_points + x.campaign_points AS points
    FROM base b CROSS JOIN LATERAL (SELECT
        CASE WHEN b.tiers THEN b.base * (coalesce((SELECT t.{column_list(MemberTier, "multiplier_percent")}
                                                   FROM {_TIERS} t WHERE t.{column_list(MemberTier, "member_id")}
                                                   = b.member_id), b.base_tier_pct) - 100) / 100
             ELSE 0 END AS tier_points,
        CASE WHEN b.campaigns THEN (
            SELECT CAST(coalesce(sum(CASE WHEN c.multiplier_percent IS NOT NULL
                                          THEN b.base * (c.multiplier_percent - 100) / 100
                                          ELSE c.bonus_points END), 0) AS bigint)
            FROM {_AUDIENCE} a JOIN {_CAMPAIGNS} c ON c.id = a.campaign_id
            WHERE a.member_id = b.member_id AND a.treated AND c.merchant_id = b.merchant_id
              AND c.starts_at <= b.now AND c.ends_at > b.now)
             ELSE 0 END AS campaign_points) x
),"""


def _outbox(event_type: str, kind: EntryKind, points: str, amount_minor: str) -> str:
    """The batch's webhook deliveries of ``event_type`` (:func:`batch_sql.outbox_cte`), joined to the member's row."""
    return outbox_cte(event_type, member="u.id", joined_on="es.member_id = u.id",
                      payload=f"'entry_id', es.id, 'kind', {_ENTRY_KIND[kind]}, 'points', {points}, "
                              f"'amount_minor', {amount_minor}, 'reference', es.reference, 'hold_id', NULL, "
                              "'reverses_id', NULL")


# The members are read once, in the snapshot, with their row versions. The conditions of the
# common case are tested here (so a refusal inserts nothing) and again in the UPDATE, on the
# newest version of each row.
_EARN_SQL = f"""
WITH req AS (
    SELECT * FROM unnest(CAST(:merchant_id AS bigint[]), CAST(:loyalty_id AS varchar[]),
                         CAST(:amount_minor AS bigint[]), CAST(:minor_per_unit AS bigint[]),
                         CAST(:reference AS varchar[]), CAST(:idempotency_key AS varchar[]),
                         CAST(:request_hash AS varchar[]), CAST(:now AS timestamptz[]),
                         CAST(:expires_at AS timestamptz[]), CAST(:campaigns AS boolean[]),
                         CAST(:tiers AS boolean[]), CAST(:base_tier_pct AS int[]), CAST(:hooked AS boolean[]))
        WITH ORDINALITY AS r (merchant_id, loyalty_id, amount_minor, minor_per_unit, reference, idempotency_key,
                              request_hash, now, expires_at, campaigns, tiers, base_tier_pct, hooked, n)
),
base AS (
    SELECT r.*, m.id AS member_id, m.xmin AS version, m.balance, {_EARN_POINTS} AS base
    FROM req r
    JOIN {_MERCHANTS} mc ON mc.id = r.merchant_id AND {_MERCHANT_MAY_WRITE}
    JOIN {_MEMBERS} m ON m.loyalty_id = r.loyalty_id AND m.referred_by_id IS NULL AND m.owed = 0
    WHERE {_NOT_REFUSED}
),
{_PROGRAM_POINTS}
e AS (
    INSERT INTO {_ENTRIES} ({column_list(Entry, "kind", "member_id", "merchant_id", "points", "amount_minor",
                                         "reference", "idempotency_key", "request_hash", "created_at")})
    SELECT {_ENTRY_KIND[EntryKind.EARN]}, s.member_id, s.merchant_id, s.points, s.amount_minor, s.reference,
           s.idempotency_key, s.request_hash, s.now
    FROM snap s
    WHERE s.base > 0 AND {_within_max_points("s.balance", "s.points")}
    ORDER BY s.n
    ON CONFLICT DO NOTHING
    RETURNING id, member_id, merchant_id, idempotency_key, points
),
es AS (
    SELECT e.id, e.member_id, e.points, s.n, s.version, s.merchant_id, s.now, s.expires_at, s.base,
           s.tier_points, s.campaign_points, s.hooked, s.amount_minor, s.reference
    FROM e JOIN snap s ON s.merchant_id = e.merchant_id AND s.idempotency_key = e.idempotency_key
                      AND s.member_id = e.member_id
    ORDER BY e.member_id
),
u AS (
    UPDATE {_MEMBERS} m
    SET balance = m.balance + es.points, lifetime_points = m.lifetime_points + es.points
    FROM es
    WHERE m.id = es.member_id AND m.xmin = es.version
      AND m.referred_by_id IS NULL AND m.owed = 0 AND {_within_max_points("m.balance", "es.points")}
    RETURNING {_RETURNING}
),
lot AS (
    INSERT INTO {_LOTS} ({column_list(Lot, "member_id", "entry_id", "issuer_merchant_id", "points", "remaining",
                                      "expires_at", "reversed", "created_at")})
    SELECT u.id, es.id, es.merchant_id, es.points, es.points, es.expires_at, false, es.now
    FROM u JOIN es ON es.member_id = u.id
    ORDER BY es.n
),
legs AS (
    INSERT INTO {_POSTINGS} ({column_list(Posting, "entry_id", "account", "account_id", "points")})
    SELECT es.id, leg.account, {_EARN_LEG_HOLDER}, leg.sign * es.points
    FROM u JOIN es ON es.member_id = u.id,
         (VALUES {_EARN_LEG_VALUES}) AS leg (n, account, sign)
    ORDER BY es.n, leg.n
),
bonus AS (
    INSERT INTO {EarnBonus.__tablename__} ({column_list(EarnBonus, "entry_id", "member_id", "merchant_id",
                                                        "base_points", "tier_points", "campaign_points",
                                                        "created_at")})
    SELECT es.id, u.id, es.merchant_id, es.base, es.tier_points, es.campaign_points, es.now
    FROM u JOIN es ON es.member_id = u.id
    WHERE es.tier_points + es.campaign_points > 0
),
{_outbox("points.earned", EntryKind.EARN, "es.points", "es.amount_minor")}
{_RESULT}"""

# Lots in FIFO order (soonest expiry, then id) up to the first that covers the points, as in
# ``core.open_lots``: ``walk`` steps along ix_lots_open one lot at a time, per member, and stops
# there, so a redemption reads the lots it spends, however many more the member holds. Each lot
# gives min(remaining, points still needed).
_REDEEM_SQL = f"""
WITH RECURSIVE req AS (
    SELECT * FROM unnest(CAST(:merchant_id AS bigint[]), CAST(:loyalty_id AS varchar[]), CAST(:points AS bigint[]),
                         CAST(:reference AS varchar[]), CAST(:idempotency_key AS varchar[]),
                         CAST(:request_hash AS varchar[]), CAST(:now AS timestamptz[]),
                         CAST(:allowance AS bigint[]), CAST(:since AS timestamptz[]),
                         CAST(:proof_step AS bigint[]), CAST(:hooked AS boolean[]))
        WITH ORDINALITY AS r (merchant_id, loyalty_id, points, reference, idempotency_key, request_hash, now,
                              allowance, since, proof_step, hooked, n)
),
snap AS (
    SELECT r.*, m.id AS member_id, m.xmin AS version
    FROM req r
    JOIN {_MERCHANTS} mc ON mc.id = r.merchant_id AND {_MERCHANT_MAY_WRITE}
    JOIN {_MEMBERS} m ON m.loyalty_id = r.loyalty_id AND {_may_debit("m", "r.points")}
    WHERE {_NOT_REFUSED}
      AND CASE WHEN r.proof_step IS NULL THEN r.points + {_USED_WITHOUT_PROOF} <= r.allowance
               ELSE {_WRONG_PROOFS} < {MAX_WRONG_PROOFS} END
),
e AS (
    INSERT INTO {_ENTRIES} ({column_list(Entry, "kind", "member_id", "merchant_id", "points", "reference",
                                         "idempotency_key", "request_hash", "created_at")})
    SELECT {_ENTRY_KIND[EntryKind.REDEEM]}, s.member_id, s.merchant_id, -s.points, s.reference,
           s.idempotency_key, s.request_hash, s.now
    FROM snap s
    ORDER BY s.n
    ON CONFLICT DO NOTHING
    RETURNING id, member_id, merchant_id, idempotency_key, points
),
es AS (
    SELECT e.id, e.member_id, s.points, s.n, s.version, s.merchant_id, s.now, s.proof_step, s.hooked,
           s.reference
    FROM e JOIN snap s ON s.merchant_id = e.merchant_id AND s.idempotency_key = e.idempotency_key
                      AND s.member_id = e.member_id
    ORDER BY e.member_id
),
proof AS (
    INSERT INTO {_PROOFS} ({column_list(PresenceProof, "member_id", "step", "merchant_id", "entry_id", "created_at")})
    SELECT es.member_id, es.proof_step, es.merchant_id, es.id, es.now FROM es
    WHERE es.proof_step IS NOT NULL
    ORDER BY es.member_id
    ON CONFLICT DO NOTHING
    RETURNING entry_id
),
walk (member_id, id, issuer_merchant_id, remaining, expires_at, points_ahead, wanted) AS (
    SELECT first.member_id, first.id, first.issuer_merchant_id, first.remaining, first.expires_at,
           CAST(0 AS bigint), es.points
    FROM es CROSS JOIN LATERAL (
        SELECT l.member_id, l.id, l.issuer_merchant_id, l.remaining, l.expires_at
        FROM {_LOTS} l
        WHERE l.member_id = es.member_id AND l.remaining > 0
        ORDER BY {_FIFO}
        LIMIT 1
    ) first
    UNION ALL
    SELECT next.member_id, next.id, next.issuer_merchant_id, next.remaining, next.expires_at,
           w.points_ahead + w.remaining, w.wanted
    FROM walk w CROSS JOIN LATERAL (
        SELECT l.member_id, l.id, l.issuer_merchant_id, l.remaining, l.expires_at
        FROM {_LOTS} l
        WHERE l.member_id = w.member_id AND l.remaining > 0 AND {_FIFO_AFTER_WALK}
        ORDER BY {_FIFO}
        LIMIT 1
    ) next
    WHERE w.points_ahead + w.remaining < w.wanted
),
take AS (
    SELECT member_id, id, issuer_merchant_id, expires_at, least(remaining, wanted - points_ahead) AS points
    FROM walk
),
u AS (
    UPDATE {_MEMBERS} m
    SET balance = m.balance - es.points
    FROM es
    WHERE m.id = es.member_id AND m.xmin = es.version
      AND {_may_debit("m", "es.points")}
      AND (SELECT coalesce(sum(take.points), 0) FROM take WHERE take.member_id = es.member_id) = es.points
      AND (es.proof_step IS NULL OR EXISTS (SELECT 1 FROM proof WHERE proof.entry_id = es.id))
    RETURNING {_RETURNING}
),
spent AS (
    UPDATE {_LOTS} l
    SET remaining = l.remaining - take.points
    FROM take JOIN u ON u.id = take.member_id
    WHERE l.id = take.id
),
honored AS (
    INSERT INTO {_ALLOCATIONS} ({column_list(Allocation, "entry_id", "lot_id", "member_id", "issuer_merchant_id",
                                             "merchant_id", "kind", "points", "created_at")})
    SELECT es.id, take.id, u.id, take.issuer_merchant_id, es.merchant_id, {_REDEEM_ALLOCATION}, take.points, es.now
    FROM take JOIN u ON u.id = take.member_id JOIN es ON es.member_id = u.id
    ORDER BY es.n, {", ".join(f"take.{name}" for name in rules.FIFO_ORDER)}
),
legs AS (
    INSERT INTO {_POSTINGS} ({column_list(Posting, "entry_id", "account", "account_id", "points")})
    SELECT es.id, leg.account, {_REDEEM_LEG_HOLDER}, leg.sign * es.points
    FROM u JOIN es ON es.member_id = u.id,
         (VALUES {_REDEEM_LEG_VALUES}) AS leg (n, account, sign)
    ORDER BY es.n, leg.n
),
{_outbox("points.redeemed", EntryKind.REDEEM, "-es.points", "NULL")}
{_RESULT}"""

_EARN = number_parameters(_EARN_SQL)
_REDEEM = number_parameters(_REDEEM_SQL)


Done = tuple[int, int, Member]  # (entry id, the entry's points, the member after)


def _member(row: asyncpg.Record) -> Member:
    return Member.from_values(**{c.key: row[i] for i, c in enumerate(_MEMBER_COLUMNS, start=3)})


async def _run(db: Database, statement: NumberedSql, operations: Sequence[Mapping[str, Any]],
               kind: EntryKind) -> list[Done | None]:
    """Run one batch as one statement, its own transaction: per operation ``Done``, or None.

    None means the multi-statement path must run that operation: the statement did not write
    it, or failed, which undoes the whole batch. When it failed itself because a member changed
    after its snapshot (an entry without its member update: another process wrote to that
    member meanwhile, and has committed since, as the UPDATE waited for it), it runs once more,
    on a snapshot that sees the change. A lost connection is handed over too: whether or not
    the statement committed, the multi-statement path answers right, by replaying the entry if
    it did.
    """
    done: list[Done | None] = [None] * len(operations)
    rows = await fetch_batch(db, statement, operations)
    for row in rows:
        done[row[0] - 1] = (int(row[1]), int(row[2]), _member(row))
    if db.hooks is not None and rows:  # live events, after the commit (the outbox rows are in the statement)
        db.hooks.after([
            entry_change(kind, result[0], result[2].id, operation["merchant_id"], result[1], operation["now"],
                         amount_minor=operation.get("amount_minor"), reference=operation["reference"])
            for operation, result in zip(operations, done, strict=True) if result is not None
        ])
    return done


class FastPath:
    """The one-statement earn and redeem of one database, each batching concurrent calls.

    ``max_in_flight`` statements of each kind run at once; calls that arrive meanwhile wait
    and go together in the next (:mod:`coalition.ledger.batching`), at most ``max_batch``
    operations, one per member.
    """

    def __init__(self, db: Database, *, max_in_flight: int, max_batch: int = 32) -> None:
        def batcher(statement: NumberedSql, kind: EntryKind) -> Batcher[dict[str, Any], Done | None]:
            return Batcher(lambda operations: _run(db, statement, operations, kind), itemgetter("loyalty_id"),
                           max_in_flight=max_in_flight, max_size=max_batch)

        self._earn = batcher(_EARN, EntryKind.EARN)
        self._redeem = batcher(_REDEEM, EntryKind.REDEEM)

    async def earn(
        self, *, merchant_id: int, loyalty_id: str, amount_minor: int, minor_per_unit: int, reference: str | None,
        idempotency_key: str, request_hash: str, now: dt.datetime, expires_at: dt.datetime,
        campaigns: bool = False, tiers: bool = False, base_tier_pct: int = 100, hooked: bool = False,
    ) -> Done | None:
        """A plain earn: ``(entry_id, points, member after)``, or None to take the multi-statement path.

        ``campaigns``/``tiers``: look up the member's campaign and (merchant-funded) tier points;
        ``base_tier_pct``: the multiplier of a member no tier review has seen yet."""
        return await self._earn.submit({
            "merchant_id": merchant_id, "loyalty_id": loyalty_id, "amount_minor": amount_minor,
            "minor_per_unit": minor_per_unit, "reference": reference, "idempotency_key": idempotency_key,
            "request_hash": request_hash, "now": now, "expires_at": expires_at, "campaigns": campaigns,
            "tiers": tiers, "base_tier_pct": base_tier_pct, "hooked": hooked,
        })

    async def redeem(
        self, *, merchant_id: int, loyalty_id: str, points: int, reference: str | None, idempotency_key: str,
        request_hash: str, now: dt.datetime, allowance: int, since: dt.datetime, proof_step: int | None = None,
        hooked: bool = False,
    ) -> Done | None:
        """A plain redemption: ``(entry_id, -points, member after)``, or None to take the multi-statement path.

        Without proof of presence it must stay within the ``allowance`` (points this merchant may take from
        the member since ``since`` without proof); with one (``proof_step``: the time step of a code already
        checked against the loyalty ID) the statement writes the proof, once: a proof used before fails it.
        """
        return await self._redeem.submit({
            "merchant_id": merchant_id, "loyalty_id": loyalty_id, "points": points, "reference": reference,
            "idempotency_key": idempotency_key, "request_hash": request_hash, "now": now, "allowance": allowance,
            "since": since, "proof_step": proof_step, "hooked": hooked,
        })
