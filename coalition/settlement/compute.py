"""A batch's figures for a window of ledger entries, computed in the database.

:func:`compute_settlement` reads, never writes: the run (:mod:`coalition.settlement.service`)
and the what-if simulation both call it. The window is the entries with
``after_entry_id < id <= through_entry_id``; a handful of ``GROUP BY`` queries over the
attribution rows (allocations, ISSUED postings) bring back one row per
(policy version, issuer, redeemer) and only those rows are priced in Python.

What each kind of activity is worth (V = point value, r = reimbursement rate,
b = breakage share, all from the policy version in force when the transaction happened;
a reversal is priced under the version of the transaction it reverses):

=============  ===========================================  =============================
line           ISSUANCE                                     REDEMPTION
=============  ===========================================  =============================
ISSUED  i      issuer -p*V                                  nothing
HONORED i->m   redeemer +round(p*V*r)                       i != m: issuer -p*V, redeemer
                                                            +round(p*V*r); i == m: nothing
EXPIRED i      issuer +round(p*V*b) (breakage returned)     nothing
=============  ===========================================  =============================

``round`` is half-even, once per line; the residue (exact minus rounded, summed over the
lines) goes to the network and is written in the statement, so positions plus network
income are exactly zero. Issuer NULL is the network (network-issued points): it is
charged like a merchant but holds no position. A reversal whose original transaction
lies in the window nets into the original's line; one whose original was settled in an
earlier batch (``id <= after_entry_id``) becomes an ADJUSTMENT line of its own that names
the original transaction and its batch.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, cast, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from coalition.config import Settings
from coalition.ledger.models import Account, Allocation, AllocationKind, Entry, Posting
from coalition.settlement import netting
from coalition.settlement.models import FundingModel, LineKind, SettlementBatch
from coalition.settlement.policy import Policy, policy_versions

Progress = Callable[[str, int, int], None]
STEPS = 5


@dataclass(slots=True)
class Line:
    """One priced line. ``issuer_minor`` / ``redeemer_minor`` are the signed effects on positions."""

    kind: LineKind
    policy: Policy
    issuer: int | None
    redeemer: int | None
    points: int
    issuer_minor: int = 0
    redeemer_minor: int = 0
    exact_minor: Decimal = Decimal(0)
    reversal_entry_id: int | None = None
    original_entry_id: int | None = None
    original_batch_id: int | None = None

    @property
    def residue(self) -> Decimal:
        return self.exact_minor - (self.issuer_minor + self.redeemer_minor)


@dataclass
class MerchantFigures:
    merchant_id: int
    points_issued: int = 0
    points_honored: int = 0
    points_reversed: int = 0
    points_expired: int = 0
    charges_minor: int = 0
    reimbursements_minor: int = 0
    breakage_minor: int = 0
    adjustments_minor: int = 0

    @property
    def net_minor(self) -> int:
        return self.reimbursements_minor + self.breakage_minor - self.charges_minor + self.adjustments_minor


@dataclass
class SettlementFigures:
    after_entry_id: int
    through_entry_id: int
    lines: list[Line]
    merchants: dict[int, MerchantFigures]
    netting: netting.Netting
    residue_minor: Decimal
    policies: list[Policy] = field(default_factory=list)

    @property
    def matrix(self) -> list[tuple[int | None, int, int, int, int]]:
        """The issuer x redeemer matrix: (issuer, redeemer, points, reimbursed, charged), all versions summed."""
        cells: dict[tuple[int | None, int], list[int]] = {}
        for line in self.lines:
            if line.kind == LineKind.HONORED and line.redeemer is not None:
                cell = cells.setdefault((line.issuer, line.redeemer), [0, 0, 0])
                cell[0] += line.points
                cell[1] += line.redeemer_minor
                cell[2] -= line.issuer_minor
        ordered = sorted(cells.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))
        return [(i, r, v[0], v[1], v[2]) for (i, r), v in ordered]


def round_half_even(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _fraction(rate: Decimal) -> tuple[int, int] | None:
    """``rate`` as coefficient / 10**places, or None when its exponent is positive."""
    sign, digits, exponent = rate.as_tuple()
    if not isinstance(exponent, int) or exponent > 0:
        return None
    coefficient = int("".join(map(str, digits))) if digits else 0
    return (-coefficient if sign else coefficient), 10 ** -exponent


@dataclass(frozen=True, slots=True)
class _Rate:
    """A rate, and the same as a fraction for rounding with integers."""

    value: Decimal
    fraction: tuple[int, int] | None

    @classmethod
    def of(cls, rate: Decimal) -> _Rate:
        return cls(rate, _fraction(rate))

    def times(self, value: int) -> tuple[Decimal, int]:
        """``Decimal(value) * rate`` and that product rounded half-even: the same integer
        :func:`round_half_even` gives, found with integer division (a line costs a fifth)."""
        exact = Decimal(value) * self.value
        fraction = self.fraction
        if fraction is None or abs(value * fraction[0]) >= 10**27:  # past 27 digits Decimal itself rounds
            return exact, round_half_even(exact)
        quotient, remainder = divmod(value * fraction[0], fraction[1])  # floor: remainder >= 0
        twice = 2 * remainder
        if twice > fraction[1] or (twice == fraction[1] and quotient & 1):
            quotient += 1
        return exact, quotient


@dataclass(frozen=True, slots=True)
class _Terms:
    """What :func:`price` needs of a policy, worked out once per policy instead of per line."""

    point_value_minor: int
    redemption: bool
    reimbursement: _Rate
    breakage: _Rate


@functools.lru_cache(maxsize=256)
def _terms(policy: Policy) -> _Terms:
    return _Terms(policy.point_value_minor, policy.funding_model == FundingModel.REDEMPTION,
                  _Rate.of(policy.reimbursement_rate), _Rate.of(policy.breakage_share))


_ZERO = Decimal(0)
_HONORED, _ISSUED, _EXPIRED, _ADJUSTMENT = LineKind.HONORED, LineKind.ISSUED, LineKind.EXPIRED, LineKind.ADJUSTMENT


def price(line: Line, terms: _Terms | None = None) -> Line:
    """Fill the line's money from its policy (the table in the module docstring).

    ``terms``: ``_terms(line.policy)``, when the caller prices many lines of one policy.
    """
    t = terms or _terms(line.policy)
    value = line.points * t.point_value_minor
    kind = line.kind
    if kind is _ADJUSTMENT:
        kind = _HONORED if line.redeemer is not None else _ISSUED
    exact = _ZERO
    if kind is _HONORED:
        if not (t.redemption and line.issuer is not None and line.issuer == line.redeemer):
            exact, line.redeemer_minor = t.reimbursement.times(value)
            if t.redemption:
                line.issuer_minor = -value
                exact -= value
    elif kind is _ISSUED:
        if not t.redemption:
            line.issuer_minor = -value
            exact = Decimal(-value)
    elif kind is _EXPIRED and not t.redemption:
        exact, line.issuer_minor = t.breakage.times(value)
    line.exact_minor = exact
    return line


def _version_index(versions: list[Policy], column: Any) -> ColumnElement[Any]:
    """SQL for the index (into ``versions``) of the version in force at ``column``."""
    if len(versions) == 1:
        return literal(0)
    whens = [(column < versions[k + 1].effective_from, k) for k in range(len(versions) - 1)]
    return case(*whens, else_=len(versions) - 1)


def _ordinals(n: int) -> list[ColumnElement[Any]]:
    # GROUP BY 1, 2, ...: PostgreSQL cannot tell that a CASE with bound timestamps in the
    # select list equals the same CASE (other parameters) in GROUP BY.
    return [literal_column(str(k)) for k in range(1, n + 1)]


def _index_at(versions: list[Policy], when: dt.datetime) -> int:
    """The same choice as :func:`_version_index`, in Python."""
    return max(0, bisect.bisect_right([v.effective_from for v in versions[1:]], when))


async def _all_rows(conn: AsyncConnection, query: Select[Any]) -> Sequence[Sequence[Any]]:
    """Every row of ``query``, as plain sequences (kinds as their string values).

    PostgreSQL: straight from asyncpg. The matrix query returns a row per issuer x redeemer
    cell (10^5 and more), and SQLAlchemy's result rows cost about as much again as reading
    them (BENCHMARKS.md, "Settlement"). The statement is rendered with its values inlined:
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


async def compute_settlement(
    conn: AsyncConnection,
    settings: Settings,
    *,
    after_entry_id: int,
    through_entry_id: int,
    policy_override: Policy | None = None,
    progress: Progress | None = None,
) -> SettlementFigures:
    """Price the window ``(after_entry_id, through_entry_id]``; writes nothing.

    ``policy_override`` prices every transaction under that one policy instead of the
    stored versions (the what-if simulation).
    """
    lo, hi = after_entry_id, through_entry_id
    versions = [policy_override] if policy_override is not None else await policy_versions(conn, settings)

    def step(name: str, done: int) -> None:
        if progress is not None:
            progress(name, done, STEPS)

    merchants: dict[int, MerchantFigures] = {}

    def figures(merchant_id: int) -> MerchantFigures:
        found = merchants.get(merchant_id)
        if found is None:
            found = merchants[merchant_id] = MerchantFigures(merchant_id)
        return found

    honored: dict[tuple[int, int | None, int], int] = {}
    issued: dict[tuple[int, int | None], int] = {}
    adjustments: list[Line] = []

    # 1. One pass over the window's allocations, shaped like a bare issuer x redeemer GROUP BY:
    #    points honored (REDEEM, CAPTURE) and expired (EXPIRY: the one kind without a
    #    merchant, a CHECK on the table) per issuer and merchant; grouping by kind as well
    #    cost 10-25 % more (BENCHMARKS.md, "Settlement"). HOLD and RELEASE move no money,
    #    REVERSAL is read from the ISSUED postings and RESTORE per reversal, below.
    columns: list[Any] = [Allocation.issuer_merchant_id, Allocation.merchant_id]
    if len(versions) > 1:
        columns.append(_version_index(versions, Allocation.created_at).label("v"))
    money = Allocation.kind.in_([AllocationKind.REDEEM, AllocationKind.CAPTURE, AllocationKind.EXPIRY])
    rows = await _all_rows(conn, (
        select(*columns, cast(func.sum(Allocation.points), BigInteger).label("points"))  # not numeric: no Decimals
        .where(money, _in_window(Allocation.entry_id, lo, hi)).group_by(*_ordinals(len(columns)))
    ))
    expired: dict[tuple[int, int | None], int] = {}
    several = len(versions) > 1
    for row in rows:
        issuer, redeemer, points = row[0], row[1], row[-1]
        v = int(row[2]) if several else 0
        if redeemer is None:
            expired[(v, issuer)] = expired.get((v, issuer), 0) + points
            if issuer is not None:
                figures(issuer).points_expired += points
        else:
            honored[(v, issuer, redeemer)] = honored.get((v, issuer, redeemer), 0) + points
            figures(redeemer).points_honored += points
    # Reversed redemptions (RESTORE), per reversal entry, through the small partial index.
    restores: list[tuple[int | None, int, int, int]] = []
    for issuer, redeemer, rev, total in await conn.execute(
        select(Allocation.issuer_merchant_id, Allocation.merchant_id, Allocation.entry_id, func.sum(Allocation.points))
        .where(Allocation.kind == AllocationKind.RESTORE, _in_window(Allocation.entry_id, lo, hi))
        .group_by(*_ordinals(3))
    ):
        assert redeemer is not None  # a RESTORE always names the merchant that had honored the points
        restores.append((issuer, redeemer, rev, int(total)))
        figures(redeemer).points_reversed += int(total)
    step("allocations", 1)

    # 2. Points issued: ISSUED postings (earns < 0; reversals of earns > 0, kept per reversal).
    #    account_id NULL is the network. The entry's time is needed only under several versions.
    returned_by = case((Posting.points > 0, Posting.entry_id), else_=None).label("rev")
    issue_filter = (Posting.account == Account.ISSUED, _in_window(Posting.entry_id, lo, hi))
    if len(versions) == 1:
        query = select(literal(0).label("v"), Posting.account_id, returned_by, func.sum(Posting.points))
    else:
        query = (select(_version_index(versions, Entry.created_at).label("v"), Posting.account_id, returned_by,
                        func.sum(Posting.points)).join(Entry, Entry.id == Posting.entry_id))
    returns: list[tuple[int | None, int, int]] = []
    for v, issuer, rev, total in await conn.execute(query.where(*issue_filter).group_by(*_ordinals(3))):
        points = int(total)
        if rev is None:
            issued[(int(v), issuer)] = issued.get((int(v), issuer), 0) - points
            if issuer is not None:
                figures(issuer).points_issued -= points
        else:
            returns.append((issuer, rev, points))
            if issuer is not None:
                figures(issuer).points_reversed += points
    step("issued", 2)

    # 3. Reversals are priced under the version of the transaction they reverse; one whose
    #    original is in an earlier batch becomes an ADJUSTMENT line.
    originals = await _originals(conn, {r[2] for r in restores} | {r[1] for r in returns})
    for issuer, redeemer, rev, points in restores:
        orig_id, orig_at = originals[rev]
        v = _index_at(versions, orig_at)
        if orig_id > lo:
            honored[(v, issuer, redeemer)] = honored.get((v, issuer, redeemer), 0) - points
        else:
            adjustments.append(Line(LineKind.ADJUSTMENT, versions[v], issuer, redeemer, -points,
                                    reversal_entry_id=rev, original_entry_id=orig_id))
    for issuer, rev, points in returns:
        orig_id, orig_at = originals[rev]
        v = _index_at(versions, orig_at)
        if orig_id > lo:
            issued[(v, issuer)] = issued.get((v, issuer), 0) - points
        else:
            adjustments.append(Line(LineKind.ADJUSTMENT, versions[v], issuer, None, -points,
                                    reversal_entry_id=rev, original_entry_id=orig_id))
    step("reversals", 3)
    step("expiries", 4)

    # 5. Price the lines; name each adjustment's original batch.
    lines: list[Line] = []
    terms = [_terms(version) for version in versions]
    for (v, issuer), points in _sorted(issued):
        if points:
            lines.append(price(Line(_ISSUED, versions[v], issuer, None, points), terms[v]))
    for (v, issuer, redeemer), points in _sorted(honored):
        if points:
            lines.append(price(Line(_HONORED, versions[v], issuer, redeemer, points), terms[v]))
    for (v, issuer), points in _sorted(expired):
        lines.append(price(Line(_EXPIRED, versions[v], issuer, None, points), terms[v]))
    if adjustments:
        batches = list(await conn.execute(
            select(SettlementBatch.through_entry_id, SettlementBatch.id)
            # Empty batches share their through id with the one before: the earliest is the one that settled it.
            .order_by(SettlementBatch.through_entry_id, SettlementBatch.seq)))
        bounds = [b.through_entry_id for b in batches]
        for line in sorted(adjustments, key=lambda a: (a.reversal_entry_id or 0, a.issuer or 0, a.redeemer or 0)):
            at = bisect.bisect_left(bounds, line.original_entry_id or 0)
            line.original_batch_id = batches[at].id if at < len(batches) else None
            lines.append(price(line))

    exact_total, rounded_total = Decimal(0), 0
    used_by_id: dict[int, Policy] = {}
    for line in lines:
        issuer, redeemer = line.issuer, line.redeemer
        issuer_minor, redeemer_minor = line.issuer_minor, line.redeemer_minor
        kind = line.kind
        if issuer is not None and issuer_minor:
            f = figures(issuer)
            if kind is _ADJUSTMENT:
                f.adjustments_minor += issuer_minor
            elif kind is _EXPIRED:
                f.breakage_minor += issuer_minor
            else:
                f.charges_minor -= issuer_minor
        if redeemer is not None and redeemer_minor:
            f = figures(redeemer)
            if kind is _ADJUSTMENT:
                f.adjustments_minor += redeemer_minor
            else:
                f.reimbursements_minor += redeemer_minor
        exact_total += line.exact_minor
        rounded_total += issuer_minor + redeemer_minor
        used_by_id.setdefault(id(line.policy), line.policy)
    result = netting.net(lines)
    for merchant_id in result.positions:
        figures(merchant_id)
    # The sum of the lines' residues, exact_minor - (issuer_minor + redeemer_minor), in two sums.
    residue = exact_total - rounded_total
    used = sorted(used_by_id.values(), key=lambda p: p.effective_from)
    step("priced", 5)
    return SettlementFigures(after_entry_id=lo, through_entry_id=hi, lines=lines, merchants=merchants,
                             netting=result, residue_minor=residue, policies=used)


def _sort_key(item: tuple[tuple[Any, ...], int]) -> tuple[Any, ...]:
    return tuple(-1 if k is None else k for k in item[0])


def _sorted(cells: dict[Any, int]) -> list[tuple[Any, int]]:
    """The items in key order, the network (None) first as -1; plain tuple order when no key
    holds None (the usual case: a key function per item costs more than the sort)."""
    if any(None in key for key in cells):
        return sorted(cells.items(), key=_sort_key)
    return [(key, cells[key]) for key in sorted(cells)]
