"""Pricing a settlement window: plain rows in, lines, positions and figures out (no database).

:mod:`coalition.settlement.compute` reads the window's aggregates into a :class:`WindowRows`;
:func:`price_window` turns them into :class:`SettlementFigures`. Everything here is pure, so
the arithmetic is tested on hand-written rows (tests/settlement/test_pricing.py).

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

``round`` is half-even, once per line (in :func:`price`); the residue (exact minus rounded,
summed over the lines) goes to the network and is written in the statement, so positions
plus network income are exactly zero. Issuer NULL is the network (network-issued points):
it is charged like a merchant but holds no position. A reversal whose original transaction
lies in the window nets into the original's line; one whose original was settled in an
earlier batch (``id <= after_entry_id``) becomes an ADJUSTMENT line of its own that names
the original transaction and its batch.

Program costs (``program``, :class:`~coalition.settlement.models.ProgramCost`) are lines of their
own, split out of the ISSUED and HONORED cells they are part of, so a statement shows what each
program cost whom: the points a campaign or a tier multiplier added to an earn and a quest's
bonus are ISSUED by their funder (a partner; the network when the issuer is NULL), the points
honored for a voucher are HONORED by the reward's merchant. A split moves points between lines
of one cell and one policy, never money between parties: ISSUED money is an integer per point,
and a HONORED split only rounds each part on its own (the residue goes to the network as any
line's). Points of a transaction reversed in the same window are not split out (the reversal
nets the whole transaction out of its cell); a later reversal is an ADJUSTMENT as any.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from coalition.settlement import netting
from coalition.settlement.models import FundingModel, LineKind, ProgramCost
from coalition.settlement.policy import Policy


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
    program: ProgramCost | None = None

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
    through_gift_entry_id: int | None = None

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


Allocated = Sequence[Any]
"""(issuer, redeemer, [version index,] points): the version index only when there are several."""


@dataclass(frozen=True, slots=True)
class WindowRows:
    """Everything :func:`price_window` needs of a window, as plain values.

    ``allocations``: points honored (REDEEM, CAPTURE) and expired (EXPIRY, redeemer None)
    per issuer and redeemer, as :data:`Allocated` rows. ``restores``: (issuer, redeemer,
    reversal entry id, points) per reversed redemption. ``issued``: (version index, issuer,
    reversal entry id or None, sum of the ISSUED postings): earns are < 0, a reversal of an
    earn > 0 and kept per reversal. ``originals``: reversal entry id -> (original entry id,
    its time). ``batches``: (through_entry_id, batch id) of the batches so far, in
    (through_entry_id, seq) order; read only when a reversal reaches back before the window.
    """

    after_entry_id: int
    through_entry_id: int
    versions: Sequence[Policy]
    allocations: Sequence[Allocated]
    restores: Sequence[tuple[int | None, int | None, int, int]]
    issued: Sequence[tuple[int, int | None, int | None, int]]
    originals: Mapping[int, tuple[int, dt.datetime]] = field(default_factory=dict)
    batches: Sequence[tuple[int, int]] = ()
    # Gift cards (coalition/giftcards/): the window of gift card entries, the money of issuer's cards spent
    # at redeemer as (issuer, redeemer, minor units, refund entry id, refunded entry id): the ids only for a
    # refund of a spend settled in an earlier batch, which settles on a line of its own. And the fee rate.
    after_gift_entry_id: int = 0
    through_gift_entry_id: int | None = None
    gift_spent: Sequence[tuple[int, int, int, int | None, int | None]] = ()
    gift_fee_rate: Decimal = Decimal(0)
    # Program costs: (version index, issuer, redeemer or None, program, points) of the window's transactions
    # not reversed in it: ISSUED points when redeemer is None, else HONORED (module docstring).
    programs: Sequence[tuple[int, int | None, int | None, ProgramCost, int]] = ()


def under_one_policy(rows: WindowRows, policy: Policy) -> WindowRows:
    """The same window with every transaction under ``policy``: what the what-if prices.

    The rows are sums per (version, issuer, redeemer); under one policy the versions merge
    into one cell each, which is what :func:`price_window` does with rows read for that one
    policy (``read_settlement_window(conn, settings, [policy], ...)``), so the figures are identical and the
    window is read once for both pricings. Rounding stays once per (merged) line.
    """
    return dataclasses.replace(
        rows, versions=[policy],
        allocations=[(row[0], row[1], row[-1]) for row in rows.allocations],
        issued=[(0, issuer, rev, total) for _, issuer, rev, total in rows.issued],
        programs=[(0, issuer, redeemer, program, points) for _, issuer, redeemer, program, points in rows.programs])


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
        # Half-even: up past the half, and at exactly the half only from an odd quotient.
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
    Rounding: the reimbursement and the breakage are each rounded half-even once, here,
    on the line's whole amount (``_Rate.times``); charges (points x value) are integers
    already. ``exact_minor`` keeps the unrounded amount, so the residue is known.
    """
    t = terms or _terms(line.policy)
    value = line.points * t.point_value_minor
    kind = line.kind
    if kind is _ADJUSTMENT:
        kind = _HONORED if line.redeemer is not None else _ISSUED
    exact = _ZERO
    if kind is _HONORED:
        if not (t.redemption and line.issuer is not None and line.issuer == line.redeemer):
            exact, line.redeemer_minor = t.reimbursement.times(value)  # rounded half-even, once per line
            if t.redemption:
                line.issuer_minor = -value
                exact -= value
    elif kind is _ISSUED:
        if not t.redemption:
            line.issuer_minor = -value
            exact = Decimal(-value)
    elif kind is _EXPIRED and not t.redemption:
        exact, line.issuer_minor = t.breakage.times(value)  # rounded half-even, once per line
    line.exact_minor = exact
    return line


def index_at(versions: Sequence[Policy], when: dt.datetime) -> int:
    """The index of the version in force at ``when`` (the query's CASE, in Python)."""
    return max(0, bisect.bisect_right([v.effective_from for v in versions[1:]], when))


def _figures(merchants: dict[int, MerchantFigures], merchant_id: int) -> MerchantFigures:
    found = merchants.get(merchant_id)
    if found is None:
        found = merchants[merchant_id] = MerchantFigures(merchant_id)
    return found


_Honored = dict[tuple[int, int | None, int], int]  # (version, issuer, redeemer) -> points
_Issued = dict[tuple[int, int | None], int]  # (version, issuer) -> points (also expiries)
_Returns = list[tuple[int | None, int, int]]  # reversals of earns: (issuer, reversal entry id, points)


def _fold_allocations(rows: WindowRows, merchants: dict[int, MerchantFigures]) -> tuple[_Honored, _Issued]:
    """Points honored per (version, issuer, redeemer) and expired per (version, issuer)."""
    honored: _Honored = {}
    expired: _Issued = {}
    several = len(rows.versions) > 1
    for row in rows.allocations:
        issuer, redeemer, points = row[0], row[1], row[-1]
        v = int(row[2]) if several else 0
        if redeemer is None:
            expired[(v, issuer)] = expired.get((v, issuer), 0) + points
            if issuer is not None:
                _figures(merchants, issuer).points_expired += points
        else:
            honored[(v, issuer, redeemer)] = honored.get((v, issuer, redeemer), 0) + points
            _figures(merchants, redeemer).points_honored += points
    return honored, expired


def _fold_restores(rows: WindowRows, merchants: dict[int, MerchantFigures]) -> list[tuple[int | None, int, int, int]]:
    restores: list[tuple[int | None, int, int, int]] = []
    for issuer, redeemer, rev, total in rows.restores:
        assert redeemer is not None  # a RESTORE always names the merchant that had honored the points
        restores.append((issuer, redeemer, rev, int(total)))
        _figures(merchants, redeemer).points_reversed += int(total)
    return restores


def _fold_issued(rows: WindowRows, merchants: dict[int, MerchantFigures]) -> tuple[_Issued, _Returns]:
    """Points issued per (version, issuer), and the reversals of earns."""
    issued: _Issued = {}
    returns: _Returns = []
    for v, issuer, rev, total in rows.issued:
        points = int(total)
        if rev is None:
            issued[(int(v), issuer)] = issued.get((int(v), issuer), 0) - points
            if issuer is not None:
                _figures(merchants, issuer).points_issued -= points
        else:
            returns.append((issuer, rev, points))
            if issuer is not None:
                _figures(merchants, issuer).points_reversed += points
    return issued, returns


def _place_reversals(rows: WindowRows, restores: list[tuple[int | None, int, int, int]],
                     returns: _Returns, honored: _Honored, issued: _Issued) -> list[Line]:
    """Net each reversal into its original's cell, or make it an ADJUSTMENT line when the
    original lies before the window; either way under the original's policy version."""
    lo, versions, originals = rows.after_entry_id, rows.versions, rows.originals
    adjustments: list[Line] = []
    for issuer, redeemer, rev, points in restores:
        orig_id, orig_at = originals[rev]
        v = index_at(versions, orig_at)
        if orig_id > lo:
            honored[(v, issuer, redeemer)] = honored.get((v, issuer, redeemer), 0) - points
        else:
            adjustments.append(Line(LineKind.ADJUSTMENT, versions[v], issuer, redeemer, -points,
                                    reversal_entry_id=rev, original_entry_id=orig_id))
    for issuer, rev, points in returns:
        orig_id, orig_at = originals[rev]
        v = index_at(versions, orig_at)
        if orig_id > lo:
            issued[(v, issuer)] = issued.get((v, issuer), 0) - points
        else:
            adjustments.append(Line(LineKind.ADJUSTMENT, versions[v], issuer, None, -points,
                                    reversal_entry_id=rev, original_entry_id=orig_id))
    return adjustments


_Programs = dict[tuple[int, int | None, int | None, ProgramCost], int]  # (version, issuer, redeemer, program)


def _split_programs(rows: WindowRows, issued: _Issued, honored: _Honored) -> _Programs:
    """Take the program costs out of their ISSUED and HONORED cells (never more than a cell holds)."""
    programs: _Programs = {}
    for v, issuer, redeemer, program, points in rows.programs:
        cell: Any = (v, issuer) if redeemer is None else (v, issuer, redeemer)
        cells: Any = issued if redeemer is None else honored
        taken = max(0, min(int(points), cells.get(cell, 0)))
        if taken:
            cells[cell] -= taken
            key = (v, issuer, redeemer, program)
            programs[key] = programs.get(key, 0) + taken
    return programs


def _priced_lines(rows: WindowRows, issued: _Issued, honored: _Honored, expired: _Issued,
                  adjustments: list[Line]) -> list[Line]:
    """ISSUED, HONORED (each cell's plain points, then its program costs), EXPIRED then ADJUSTMENT lines,
    each group in key order, priced."""
    versions = rows.versions
    lines: list[Line] = []
    terms = [_terms(version) for version in versions]
    programs = _split_programs(rows, issued, honored) if rows.programs else {}
    by_cell: dict[tuple[int, int | None, int | None], list[tuple[ProgramCost, int]]] = {}
    for (v, issuer, redeemer, program), points in sorted(
            programs.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2] or 0, kv[0][3].value)):
        by_cell.setdefault((v, issuer, redeemer), []).append((program, points))

    def with_programs(kind: LineKind, v: int, issuer: int | None, redeemer: int | None, points: int) -> None:
        if points:
            lines.append(price(Line(kind, versions[v], issuer, redeemer, points), terms[v]))
        for program, cost in by_cell.get((v, issuer, redeemer), ()):
            lines.append(price(Line(kind, versions[v], issuer, redeemer, cost, program=program), terms[v]))

    # A program's cell is one the split took points from: it is in ``issued`` or ``honored`` (maybe at 0 now).
    for (v, issuer), points in _sorted(issued):
        with_programs(_ISSUED, v, issuer, None, points)
    for (v, issuer, redeemer), points in _sorted(honored):
        with_programs(_HONORED, v, issuer, redeemer, points)
    for (v, issuer), points in _sorted(expired):
        lines.append(price(Line(_EXPIRED, versions[v], issuer, None, points), terms[v]))
    # An adjustment names the batch that settled its original: empty batches share their
    # through id with the one before, and the earliest (first in this order) is the one.
    bounds = [through for through, _ in rows.batches]
    for line in sorted(adjustments, key=lambda a: (a.reversal_entry_id or 0, a.issuer or 0, a.redeemer or 0)):
        at = bisect.bisect_left(bounds, line.original_entry_id or 0)
        line.original_batch_id = rows.batches[at][1] if at < len(rows.batches) else None
        lines.append(price(line))
    return lines


def gift_card_lines(rows: WindowRows) -> list[Line]:
    """GIFT_CARD lines: the issuer (who holds the cash) owes the redeemer the money spent, less the fee.

    ``fee = round_half_even(spent * gift_fee_rate)`` once per line goes to the network; exact is
    ``-spent * rate``, so the residue (rounding) goes to the network like the points lines'. A spend
    at the issuer itself moves no money. Under the policy version in force at the end of the window.
    """
    if not rows.gift_spent:
        return []
    rate = _Rate.of(rows.gift_fee_rate)
    policy = rows.versions[-1]
    cells: dict[tuple[int, int, int, int], int] = {}
    for issuer, redeemer, spent, rev, orig in rows.gift_spent:
        if issuer != redeemer and spent:
            cell = (issuer, redeemer, rev or 0, orig or 0)
            cells[cell] = cells.get(cell, 0) + spent
    lines: list[Line] = []
    for (issuer, redeemer, rev, orig), spent in sorted(cells.items()):
        if not spent:
            continue
        exact, fee = rate.times(spent)
        lines.append(Line(LineKind.GIFT_CARD, policy, issuer, redeemer, spent, issuer_minor=-spent,
                          redeemer_minor=spent - fee, exact_minor=-exact,
                          reversal_entry_id=rev or None, original_entry_id=orig or None))
    return lines


def _tally(lines: list[Line], merchants: dict[int, MerchantFigures]) -> tuple[Decimal, list[Policy]]:
    """Add each line's money to its merchants' figures; the residue and the policies used."""
    exact_total, rounded_total = Decimal(0), 0
    used_by_id: dict[int, Policy] = {}
    for line in lines:
        issuer, redeemer = line.issuer, line.redeemer
        issuer_minor, redeemer_minor = line.issuer_minor, line.redeemer_minor
        kind = line.kind
        if issuer is not None and issuer_minor:
            f = _figures(merchants, issuer)
            if kind is _ADJUSTMENT:
                f.adjustments_minor += issuer_minor
            elif kind is _EXPIRED:
                f.breakage_minor += issuer_minor
            else:
                f.charges_minor -= issuer_minor
        if redeemer is not None and redeemer_minor:
            f = _figures(merchants, redeemer)
            if kind is _ADJUSTMENT:
                f.adjustments_minor += redeemer_minor
            else:
                f.reimbursements_minor += redeemer_minor
        exact_total += line.exact_minor
        rounded_total += issuer_minor + redeemer_minor
        used_by_id.setdefault(id(line.policy), line.policy)
    # The sum of the lines' residues, exact_minor - (issuer_minor + redeemer_minor), in two sums:
    # the rounding left over goes to the network, never to a merchant.
    return exact_total - rounded_total, sorted(used_by_id.values(), key=lambda p: p.effective_from)


def price_window(rows: WindowRows) -> SettlementFigures:
    """Price a window's rows: the lines, each merchant's figures, the netting and the residue."""
    merchants: dict[int, MerchantFigures] = {}
    honored, expired = _fold_allocations(rows, merchants)
    restores = _fold_restores(rows, merchants)
    issued, returns = _fold_issued(rows, merchants)
    adjustments = _place_reversals(rows, restores, returns, honored, issued)
    lines = _priced_lines(rows, issued, honored, expired, adjustments)
    lines += gift_card_lines(rows)
    residue, used = _tally(lines, merchants)
    result = netting.net(lines)
    for merchant_id in result.positions:
        _figures(merchants, merchant_id)
    return SettlementFigures(after_entry_id=rows.after_entry_id, through_entry_id=rows.through_entry_id,
                             lines=lines, merchants=merchants, netting=result, residue_minor=residue, policies=used,
                             through_gift_entry_id=rows.through_gift_entry_id)


def _sort_key(item: tuple[tuple[Any, ...], int]) -> tuple[Any, ...]:
    return tuple(-1 if k is None else k for k in item[0])


def _sorted(cells: Mapping[Any, int]) -> list[tuple[Any, int]]:
    """The items in key order, the network (None) first as -1; plain tuple order when no key
    holds None (the usual case: a key function per item costs more than the sort)."""
    if any(None in key for key in cells):
        return sorted(cells.items(), key=_sort_key)
    return [(key, cells[key]) for key in sorted(cells)]
