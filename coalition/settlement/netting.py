"""Netting math: pure functions over a batch's lines (no database, no I/O).

Every settlement line has two legs: a signed amount on the issuer's position
(``issuer_minor``: a charge is negative, a breakage return positive) and one on the
redeemer's (``redeemer_minor``: a reimbursement is positive). ``None`` as a party is the
network, which holds no position: what the legs leave over is network income.

Definitions (all in minor units):

- **position** of a merchant: the sum of its legs over all lines; > 0 the network pays it.
- **network income** = -sum(positions), exact by construction.
- **gross obligations** = sum of |leg| over every merchant leg: what would move through
  the network's clearing account if every line were paid on its own.
- **net** (multilateral, through the clearing account) = sum(|position|): one transfer
  per merchant with a non-zero position. ``net <= gross`` (triangle inequality).
- **netting ratio** = 1 - net / gross (0 when gross is 0): the share of gross obligations
  that netting removes, as a Decimal rounded half-even to 4 places.
- **bilateral view** (for comparison): each line is read as obligations between two
  parties: where one merchant pays and the other receives on the same line, the direct
  part ``min(paid, received)`` is owed merchant to merchant and the rest is owed to or by
  the network; obligations are then netted per unordered pair of parties, and each pair
  with a non-zero balance is one transfer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

NETWORK = None


class Leg(Protocol):
    @property
    def issuer(self) -> int | None: ...
    @property
    def redeemer(self) -> int | None: ...
    @property
    def issuer_minor(self) -> int: ...
    @property
    def redeemer_minor(self) -> int: ...


@dataclass(frozen=True)
class Transfer:
    """One payment: ``payer`` pays ``payee`` ``amount_minor`` (> 0); None is the network."""

    payer: int | None
    payee: int | None
    amount_minor: int


@dataclass(frozen=True)
class Netting:
    positions: dict[int, int]
    gross_minor: int
    net_minor: int
    network_income_minor: int
    netting_ratio: Decimal
    transfers: list[Transfer]
    bilateral: list[Transfer]

    @property
    def bilateral_minor(self) -> int:
        return sum(t.amount_minor for t in self.bilateral)


def positions(lines: Iterable[Leg]) -> dict[int, int]:
    result: dict[int, int] = {}
    for line in lines:
        if line.issuer is not None:
            result[line.issuer] = result.get(line.issuer, 0) + line.issuer_minor
        if line.redeemer is not None:
            result[line.redeemer] = result.get(line.redeemer, 0) + line.redeemer_minor
    return result


def gross(lines: Iterable[Leg]) -> int:
    total = 0
    for line in lines:
        if line.issuer is not None:
            total += abs(line.issuer_minor)
        if line.redeemer is not None:
            total += abs(line.redeemer_minor)
    return total


def transfers(positions_by_merchant: Mapping[int, int]) -> list[Transfer]:
    """One transfer per merchant with a non-zero position, in merchant order."""
    result = []
    for merchant, amount in sorted(positions_by_merchant.items()):
        if amount > 0:
            result.append(Transfer(payer=NETWORK, payee=merchant, amount_minor=amount))
        elif amount < 0:
            result.append(Transfer(payer=merchant, payee=NETWORK, amount_minor=-amount))
    return result


def _obligations(line: Leg) -> list[tuple[int | None, int | None, int]]:
    """The line as (payer, payee, amount) obligations; amounts may be 0."""
    i, r, x, y = line.issuer, line.redeemer, line.issuer_minor, line.redeemer_minor
    if i is not None and r is not None and i != r:
        if x < 0 < y:
            direct = min(-x, y)
            return [(i, r, direct), (i, NETWORK, -x - direct), (NETWORK, r, y - direct)]
        if y < 0 < x:
            direct = min(-y, x)
            return [(r, i, direct), (r, NETWORK, -y - direct), (NETWORK, i, x - direct)]
    result: list[tuple[int | None, int | None, int]] = []
    for party, amount in ((i, x), (r, y)):
        if party is None:
            continue
        result.append((NETWORK, party, amount) if amount >= 0 else (party, NETWORK, -amount))
    return result


def _key(party: int | None) -> int:
    return -1 if party is None else party


def bilateral(lines: Iterable[Leg]) -> list[Transfer]:
    """The minimum transfers if each pair of parties settled directly (see the module docstring)."""
    # Balances per pair in a fixed order (the network, then merchant ids); positive: the first pays.
    # The obligations of _obligations, booked inline (a batch has a line per matrix cell):
    # payer -> payee adds to (payer, payee) or takes from (payee, payer); zero balances are
    # never transfers, so zero obligations need no test.
    balances: dict[tuple[int | None, int | None], int] = {}
    get = balances.get
    for line in lines:
        i, r, x, y = line.issuer, line.redeemer, line.issuer_minor, line.redeemer_minor
        if i is not None and r is not None and i != r and (x < 0 < y or y < 0 < x):
            if x < 0:  # the issuer pays the redeemer directly, the rest goes through the network
                direct = min(-x, y)
                pair = (i, r) if i < r else (r, i)
                balances[pair] = get(pair, 0) + (direct if i < r else -direct)
                balances[(None, i)] = get((None, i), 0) + x + direct
                balances[(None, r)] = get((None, r), 0) + y - direct
            else:
                direct = min(-y, x)
                pair = (r, i) if r < i else (i, r)
                balances[pair] = get(pair, 0) + (direct if r < i else -direct)
                balances[(None, r)] = get((None, r), 0) + y + direct
                balances[(None, i)] = get((None, i), 0) + x - direct
            continue
        # Otherwise each merchant leg is owed to or by the network: (network, party) moves by the leg.
        if i is not None and x:
            balances[(None, i)] = get((None, i), 0) + x
        if r is not None and y:
            balances[(None, r)] = get((None, r), 0) + y
    result = []
    for (a, b), amount in sorted(balances.items(), key=lambda kv: (_key(kv[0][0]), _key(kv[0][1]))):
        if amount > 0:
            result.append(Transfer(payer=a, payee=b, amount_minor=amount))
        elif amount < 0:
            result.append(Transfer(payer=b, payee=a, amount_minor=-amount))
    return result


def netting_ratio(gross_minor: int, net_minor: int) -> Decimal:
    if gross_minor == 0:
        return Decimal("0.0000")
    return (1 - Decimal(net_minor) / Decimal(gross_minor)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)


def net(lines: Iterable[Leg]) -> Netting:
    """Everything above for one batch."""
    lines = list(lines)
    by_merchant: dict[int, int] = {}
    gross_minor = 0
    for line in lines:  # positions() and gross() in one pass
        if line.issuer is not None:
            by_merchant[line.issuer] = by_merchant.get(line.issuer, 0) + line.issuer_minor
            gross_minor += abs(line.issuer_minor)
        if line.redeemer is not None:
            by_merchant[line.redeemer] = by_merchant.get(line.redeemer, 0) + line.redeemer_minor
            gross_minor += abs(line.redeemer_minor)
    net_minor = sum(abs(v) for v in by_merchant.values())
    return Netting(
        positions=by_merchant, gross_minor=gross_minor, net_minor=net_minor,
        network_income_minor=-sum(by_merchant.values()), netting_ratio=netting_ratio(gross_minor, net_minor),
        transfers=transfers(by_merchant), bilateral=bilateral(lines),
    )
