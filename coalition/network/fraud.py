"""Fraud alerts: sybil referral farms, referral cycles, shared contact fingerprints, merchant collusion.

Each detector is vectorised over the whole network (no Python loop over members) and
returns ``FraudAlert`` values with a kind, the members (and merchants) involved, a score in
[0, 1] and a plain-language explanation that names counts, never contact data. The rule
behind each score is written on the detector.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from coalition.network.graphs import (
    EARN,
    REDEEM,
    IntArray,
    Members,
    PurchaseGraph,
    Purchases,
    ReferralGraph,
    Referrals,
    compact,
)


class FraudKind(enum.StrEnum):
    SYBIL_FARM = "SYBIL_FARM"
    REFERRAL_CYCLE = "REFERRAL_CYCLE"
    SHARED_CONTACT = "SHARED_CONTACT"
    MERCHANT_COLLUSION = "MERCHANT_COLLUSION"


@dataclass(frozen=True, slots=True)
class FraudAlert:
    """One suspicious group. ``member_ids`` sorted, except for a sybil farm where the referrer
    comes first, then its referees. ``merchant_ids``: the (earn, redeem) pair for collusion."""

    kind: FraudKind
    score: float
    member_ids: tuple[int, ...]
    merchant_ids: tuple[int, ...]
    explanation: str


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("s" if days != 1 else "")
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{seconds // 60} minutes"


# --- sybil farms ----------------------------------------------------------------------------


def sybil_farms(referrals: Referrals, buyer_ids: IntArray, window_s: int = 3600, min_referees: int = 10,
                min_score: float = 0.5) -> list[FraudAlert]:
    """Referrers whose referees never buy and enrolled in a burst.

    ``buyer_ids``: sorted unique ids of members with at least one earn (``PurchaseGraph.member_ids``).

    Rule, per referrer with at least ``min_referees`` referees:
    ``never`` = share of referees with no purchase; ``burst`` = the most referees enrolled
    within any ``window_s`` window, as a share of all referees; score = never x burst.
    Flagged when score >= ``min_score``. An honest referrer either has referees who buy or
    referred them over weeks, so one of the two factors is small.
    """
    if len(referrals) == 0:
        return []
    order = np.lexsort((referrals.enrolled_at, referrals.referrer_ids))
    referrers = referrals.referrer_ids[order]
    referees = referrals.referee_ids[order]
    times = referrals.enrolled_at[order]
    starts = np.flatnonzero(np.r_[True, referrers[1:] != referrers[:-1]])
    sizes = np.diff(np.r_[starts, len(referrers)])
    big = sizes >= min_referees
    if not big.any():
        return []
    # Keep only rows of big referrers before the per-row work.
    group = np.repeat(np.arange(len(starts)), sizes)
    rows = big[group]
    referrers, referees, times, group = referrers[rows], referees[rows], times[rows], group[rows]
    starts = np.flatnonzero(np.r_[True, referrers[1:] != referrers[:-1]])
    sizes = np.diff(np.r_[starts, len(referrers)])
    compact_group = np.repeat(np.arange(len(starts)), sizes)

    position = np.minimum(np.searchsorted(buyer_ids, referees), max(len(buyer_ids) - 1, 0))
    bought = (buyer_ids[position] == referees) if len(buyer_ids) else np.zeros(len(referees), dtype=bool)
    never = np.add.reduceat((~bought).astype(np.int64), starts)

    # Sliding window inside each referrer: times are sorted within a group, so the number of
    # enrollments in [t, t + window] is a searchsorted on a (group, time) key.
    base = times.min()
    key = compact_group.astype(np.int64) * (1 << 34) + (times - base)
    within = np.searchsorted(key, key + window_s, side="right") - np.arange(len(key))
    burst = np.maximum.reduceat(within, starts)

    never_share = never / sizes
    burst_share = burst / sizes
    score = never_share * burst_share
    alerts = []
    for g in np.flatnonzero(score >= min_score):
        start, size = int(starts[g]), int(sizes[g])
        members = (int(referrers[start]), *sorted(int(m) for m in referees[start:start + size]))
        alerts.append(FraudAlert(
            FraudKind.SYBIL_FARM, round(float(score[g]), 4), members, (),
            f"Referrer {members[0]} referred {size} members; {int(never[g])} of them ({never_share[g]:.0%}) "
            f"never made a purchase, and {int(burst[g])} ({burst_share[g]:.0%}) enrolled within "
            f"{_duration(window_s)} of each other.",
        ))
    alerts.sort(key=lambda alert: (-alert.score, alert.member_ids[0]))
    return alerts


# --- referral cycles ------------------------------------------------------------------------


def referral_cycles(graph: ReferralGraph) -> list[FraudAlert]:
    """Groups of members who referred each other in a loop.

    Each member is referred at most once, by a member who enrolled earlier, so an honest
    referral graph is a forest; a loop means the referral data was forged. The loops are the
    strongly connected components of more than one member (plus self-referrals), found in
    linear time by scipy; no cycle enumeration. Score: 1.
    """
    _, labels = connected_components(graph.adjacency, directed=True, connection="strong")
    sizes = np.bincount(labels)
    self_loops = np.flatnonzero(graph.adjacency.diagonal() != 0)
    alerts = []
    for label in np.flatnonzero(sizes > 1).tolist() + [-1 - int(i) for i in self_loops]:
        nodes = np.flatnonzero(labels == label) if label >= 0 else np.array([-1 - label])
        member_ids = tuple(int(m) for m in graph.ids[nodes])
        explanation = (f"Member {member_ids[0]} is recorded as referring themselves." if len(nodes) == 1 else
                       f"{len(nodes)} members referred each other in a loop; referrals always point to an earlier "
                       f"member, so the loop cannot come from real enrollments.")
        alerts.append(FraudAlert(FraudKind.REFERRAL_CYCLE, 1.0, member_ids, (), explanation))
    alerts.sort(key=lambda alert: alert.member_ids)
    return alerts


# --- shared contact fingerprints ------------------------------------------------------------


def _present(values: NDArray[Any]) -> NDArray[np.bool_]:
    if values.dtype.kind in "US":
        present: NDArray[np.bool_] = values != values.dtype.type()
        return present
    return np.asarray(np.frompyfunc(bool, 1, 1)(values), dtype=bool)


def _duplicated(values: NDArray[Any]) -> tuple[IntArray, IntArray]:
    """(member positions, key number) for every present value held by more than one member.

    A Counter over the values: blind indexes are 64-character strings, and a numpy string
    array of a million of them would take 256 MB just to be sorted.
    """
    positions = np.flatnonzero(_present(values))
    present = values[positions].tolist()
    counts = Counter(present)
    keys: dict[Any, int] = {}
    rows: list[int] = []
    numbers: list[int] = []
    for position, value in zip(positions.tolist(), present, strict=True):
        if counts[value] > 1:
            rows.append(position)
            numbers.append(keys.setdefault(value, len(keys)))
    return np.array(rows, dtype=np.int64), np.array(numbers, dtype=np.int64)


def shared_contacts(members: Members, min_members: int = 2) -> list[FraudAlert]:
    """Groups of members linked by the same e-mail or phone blind index.

    Members are linked when they share either fingerprint; a group is a connected component
    of those links (so A-B by e-mail and B-C by phone is one group of three). Rule: every
    group of at least ``min_members`` is reported; score = min(1, (size - 1) / 4), since two
    members on one phone may be a household while five are rarely one.
    """
    graph = nx.Graph()
    counts = {"email": 0, "phone": 0}
    for channel, values in (("email", members.email_index), ("phone", members.phone_index)):
        positions, keys = _duplicated(values)
        counts[channel] = len(np.unique(keys))
        graph.add_edges_from(zip(positions.tolist(), ((channel, k) for k in keys.tolist()), strict=True))
    alerts = []
    for component in nx.connected_components(graph):
        rows = [node for node in component if isinstance(node, int)]
        if len(rows) < min_members:
            continue
        emails = sum(1 for node in component if isinstance(node, tuple) and node[0] == "email")
        phones = sum(1 for node in component if isinstance(node, tuple) and node[0] == "phone")
        member_ids = tuple(sorted(int(members.ids[row]) for row in rows))
        shared = " and ".join(
            part for part in (
                f"{emails} e-mail fingerprint" + ("s" if emails != 1 else "") if emails else "",
                f"{phones} phone fingerprint" + ("s" if phones != 1 else "") if phones else "",
            ) if part
        )
        alerts.append(FraudAlert(
            FraudKind.SHARED_CONTACT, min(1.0, (len(rows) - 1) / 4), member_ids, (),
            f"{len(rows)} separately enrolled members share {shared} (compared by blind index, "
            f"without decrypting contact data).",
        ))
    alerts.sort(key=lambda alert: (-alert.score, alert.member_ids[0]))
    return alerts


# --- merchant collusion ---------------------------------------------------------------------


def _first_time(member_ids: IntArray, times: IntArray, wanted: IntArray) -> IntArray:
    """Earliest time per member of ``wanted`` (sorted unique) over rows (member_ids, times)."""
    position = np.minimum(np.searchsorted(wanted, member_ids), len(wanted) - 1)
    hit = wanted[position] == member_ids
    first = np.full(len(wanted), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, position[hit], times[hit])
    return first


def collusion(purchases: Purchases, graph: PurchaseGraph, lag_s: int = 86400, min_members: int = 10,
              min_share: float = 0.25, min_lift: float = 10.0) -> list[FraudAlert]:
    """Merchant pairs (X, Y) where members earn only at X and redeem only at Y soon after.

    A *pattern member* earns at exactly one merchant X, redeems at exactly one other
    merchant Y, and first redeems within ``lag_s`` after first earning. For each pair:
    ``c`` pattern members, ``m`` members who earn at X and redeem at Y at all, ``share`` =
    c / m (how much of the X-Y link is this pattern: the density of the X-Y core) and the
    network-wide ``rate`` of pattern members among members who earn and redeem. Flagged
    when c >= ``min_members``, share >= ``min_share`` and share >= ``min_lift`` x rate.
    Score = share.
    """
    redeems = purchases.select(purchases.kinds == REDEEM)
    if len(redeems) == 0 or len(graph.member_ids) == 0:
        return []
    r_members, r_rows = compact(redeems.member_ids)
    r_merchants, r_cols = compact(redeems.merchant_ids)
    redeemed = sp.csr_matrix((np.ones(len(r_rows), dtype=np.int64), (r_rows, r_cols)),
                             shape=(len(r_members), len(r_merchants)))
    redeemed.sum_duplicates()
    r_degree = np.diff(redeemed.indptr)
    e_degree = np.diff(graph.counts.indptr)

    e_single = np.flatnonzero(e_degree == 1)
    r_single = np.flatnonzero(r_degree == 1)
    both, e_at, r_at = np.intersect1d(graph.member_ids[e_single], r_members[r_single], assume_unique=True,
                                      return_indices=True)
    earn_merchant = graph.merchant_ids[graph.counts.indices[graph.counts.indptr[e_single[e_at]]]]
    redeem_merchant = r_merchants[redeemed.indices[redeemed.indptr[r_single[r_at]]]]
    differ = earn_merchant != redeem_merchant
    both, earn_merchant, redeem_merchant = both[differ], earn_merchant[differ], redeem_merchant[differ]
    if len(both) == 0:
        return []
    earns = purchases.kinds == EARN
    first_earn = _first_time(purchases.member_ids[earns], purchases.times[earns], both)
    first_redeem = _first_time(redeems.member_ids, redeems.times, both)
    lag = first_redeem - first_earn
    fast = (lag >= 0) & (lag <= lag_s)
    pattern, x, y = both[fast], earn_merchant[fast], redeem_merchant[fast]
    active = len(np.intersect1d(graph.member_ids, r_members, assume_unique=True))
    rate = len(pattern) / max(active, 1)

    pairs, inverse, counts = np.unique(np.stack([x, y], axis=1), axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    earners = graph.counts.tocsc()
    redeemers = redeemed.tocsc()
    alerts = []
    for p in np.flatnonzero(counts >= min_members):
        merchant_x, merchant_y = int(pairs[p, 0]), int(pairs[p, 1])
        col_x = int(np.searchsorted(graph.merchant_ids, merchant_x))
        col_y = int(np.searchsorted(r_merchants, merchant_y))
        at_x = graph.member_ids[earners.indices[earners.indptr[col_x]:earners.indptr[col_x + 1]]]
        at_y = r_members[redeemers.indices[redeemers.indptr[col_y]:redeemers.indptr[col_y + 1]]]
        linked = len(np.intersect1d(at_x, at_y, assume_unique=True))
        c = int(counts[p])
        share = c / max(linked, 1)
        if share < min_share or share < min_lift * rate:
            continue
        alerts.append(FraudAlert(
            FraudKind.MERCHANT_COLLUSION, round(share, 4), tuple(sorted(int(m) for m in pattern[inverse == p])),
            (merchant_x, merchant_y),
            f"{c} members earned points only at merchant {merchant_x} and redeemed them only at merchant "
            f"{merchant_y}, within {_duration(lag_s)} of earning; they are {share:.0%} of the {linked} members "
            f"linking the two, against {rate:.2%} for members network-wide.",
        ))
    alerts.sort(key=lambda alert: (-alert.score, alert.merchant_ids))
    return alerts
