"""Fraud alerts scored against the network's own honest behaviour, not fixed cut-offs.

Every detector works the same way. Each member carries plain evidence from the ledger
(``Activity``): how often they earned and redeemed, how soon after enrolling, whether their
contact fingerprint is shared. A detector groups candidates (a referrer's referees, members
linked by a fingerprint, straw members around a set of merchants) and weighs each group's
evidence against the rate of the same evidence among the *honest* rest of the network, which
it estimates robustly: the rate is re-estimated without the groups it flagged until it settles
(iterated exclusion), so a large fraud group never hides a small one, and a network where
honest members often look alike (many one-time buyers, much same-day cross-redemption) simply
raises the bar. The weight is a log-likelihood ratio (or, for collusion, a Poisson tail of
observed against expected straw members); a group is flagged when its evidence is stronger than
``-log(alpha)``, which holds at any network size. There is no minimum group size.

Scores are in (0, 1]: ``1 / (1 + exp(-(evidence - threshold)))``, 0.5 at the threshold. A
member's fraud score combines every alert they are on (``FraudReport``): ``1 - prod(1 - s)``.
Reviewers' decisions come in as ``Reviews``: dismissed members leave the alerts and the
baseline, confirmed ones are known fraud (score 1, never part of the honest baseline).
Explanations name counts, rates and expectations, never contact data.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components
from scipy.special import gammainc

from coalition.network.graphs import (
    EARN,
    FloatArray,
    IntArray,
    Members,
    Purchases,
    ReferralGraph,
    Referrals,
    compact,
    referral_graph,
    unique_sorted,
)

DAY_S = 86400
BoolArray = NDArray[np.bool_]


class FraudKind(enum.StrEnum):
    SYBIL_FARM = "SYBIL_FARM"
    REFERRAL_CYCLE = "REFERRAL_CYCLE"
    SHARED_CONTACT = "SHARED_CONTACT"
    MERCHANT_COLLUSION = "MERCHANT_COLLUSION"


@dataclass(frozen=True, slots=True)
class FraudAlert:
    """One suspicious group. ``member_ids`` sorted, except for a sybil farm where the referrer
    comes first, then its referees. ``merchant_ids``: the merchants of a collusion ring, sorted."""

    kind: FraudKind
    score: float
    member_ids: tuple[int, ...]
    merchant_ids: tuple[int, ...]
    explanation: str


@dataclass(frozen=True, slots=True)
class Reviews:
    """Reviewers' decisions (the ``fraud_reviews`` table) as the analysis takes them."""

    confirmed_members: frozenset[int] = frozenset()
    dismissed_members: frozenset[int] = frozenset()
    dismissed_merchants: frozenset[int] = frozenset()


NO_REVIEWS = Reviews()


def _score(evidence: float, threshold: float) -> float:
    return round(1.0 / (1.0 + math.exp(-min(max(evidence - threshold, -50.0), 50.0))), 4)


def _llr(hits: IntArray | FloatArray, total: IntArray | FloatArray, honest: float, fraud: float) -> FloatArray:
    """Log-likelihood ratio of ``hits`` of ``total`` Bernoulli trials under the fraud rate against
    the honest rate."""
    result: FloatArray = (hits * math.log(fraud / honest)
                          + (total - hits) * math.log((1.0 - fraud) / (1.0 - honest)))
    return result


def _rate(hits: float, total: float, prior_mean: float = 0.05, prior_weight: float = 20.0,
          low: float = 0.005, high: float = 0.6) -> float:
    """A smoothed rate (Beta prior), clipped so one rate never decides alone."""
    return min(max((hits + prior_mean * prior_weight) / (total + prior_weight), low), high)


def _spending(counts: IntArray, honest: FloatArray, size: int) -> str:
    """How a group spent against what honest members of its size would: words and numbers."""
    parts = [f"{int(counts[c])} {CATEGORY_WORDS[c]} ({size * float(honest[c]):.1f} expected)"
             for c in (NEVER, MINIMAL, ONCE) if counts[c]]
    return ", ".join(parts) + f" at the honest network's rates ({float(honest[:3].sum()):.0%} buy at most once)"


def _duration(seconds: float) -> str:
    if seconds >= 2 * DAY_S:
        return f"{seconds / DAY_S:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{max(seconds, 60) / 60:.0f} minutes"


# --- per-member evidence --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Activity:
    """Per member (``ids`` sorted): enrollment, earns, redemptions, first and last activity,
    whether their e-mail or phone fingerprint is held by another member."""

    ids: IntArray
    enrolled_at: IntArray
    earns: IntArray
    redeems: IntArray
    earned_minor: IntArray
    first_at: IntArray
    last_at: IntArray
    shared_contact: BoolArray
    minimal_minor: int = 0  # a basket at most this big is a minimal purchase (the network's 20th percentile)
    duplicates: dict[str, tuple[IntArray, IntArray]] = field(default_factory=dict)  # _duplicated per channel

    def index(self, member_ids: IntArray) -> IntArray:
        positions: IntArray = np.minimum(np.searchsorted(self.ids, member_ids), max(len(self.ids) - 1, 0))
        return positions

    @property
    def inactive(self) -> BoolArray:
        """Never bought, or bought exactly once (what collects a sign-up or referral bonus)."""
        flags: BoolArray = self.earns <= 1
        return flags

    @property
    def category(self) -> NDArray[np.int8]:
        """``NEVER``, ``MINIMAL`` (one purchase, a minimal basket), ``ONCE`` (one ordinary purchase)
        or ``ACTIVE`` (two or more), per member."""
        result = np.full(len(self.ids), ACTIVE, dtype=np.int8)
        result[self.earns == 1] = ONCE
        result[(self.earns == 1) & (self.earned_minor <= self.minimal_minor)] = MINIMAL
        result[self.earns == 0] = NEVER
        return result


NEVER, MINIMAL, ONCE, ACTIVE = 0, 1, 2, 3
CATEGORY_WORDS = ("never bought", "bought once at a minimal basket", "bought once", "bought repeatedly")
FRAUD_MIX = np.array([0.55, 0.30, 0.10, 0.05])
"""How made-up accounts spend: most never buy, some make the one minimal purchase a bonus needs."""
HONEST_PRIOR = np.array([0.05, 0.03, 0.07, 0.85])


def _honest_mix(categories: NDArray[np.int8], prior: FloatArray = HONEST_PRIOR, weight: float = 20.0) -> FloatArray:
    """The share of each category among (presumed) honest members, smoothed towards ``prior``."""
    counts = np.bincount(categories, minlength=4).astype(np.float64)
    mix: FloatArray = np.maximum((counts + prior * weight) / (counts.sum() + weight), 0.002)
    normalised: FloatArray = mix / mix.sum()
    return normalised


def _weights(honest: FloatArray) -> FloatArray:
    """Log-likelihood ratio of each category, fraud against honest."""
    result: FloatArray = np.log(FRAUD_MIX / honest)
    return result


def member_activity(members: Members, purchases: Purchases) -> Activity:
    """Each member's evidence, from the members and their ledger activity (no Python loop over rows)."""
    ids, inverse = compact(np.concatenate([members.ids, purchases.member_ids]))
    n = len(ids)
    of_member, of_row = inverse[:len(members)], inverse[len(members):]
    earn = purchases.kinds == EARN
    earns = np.bincount(of_row[earn], minlength=n).astype(np.int64)
    redeems = np.bincount(of_row[~earn], minlength=n).astype(np.int64)
    earned = np.bincount(of_row[earn], weights=purchases.amounts_minor[earn], minlength=n).astype(np.int64)
    big = np.iinfo(np.int64).max
    first = np.full(n, big, dtype=np.int64)
    last = np.full(n, -big, dtype=np.int64)
    np.minimum.at(first, of_row, purchases.times)  # numpy >= 1.25: ufunc.at is faster than a sort
    np.maximum.at(last, of_row, purchases.times)
    enrolled = first.copy()
    enrolled[of_member] = members.enrolled_at
    enrolled = np.where(enrolled == big, 0, enrolled)
    none = first == big
    first[none] = enrolled[none]
    last[none] = enrolled[none]
    shared = np.zeros(n, dtype=bool)
    duplicates = {}
    for channel, values in (("email", members.email_index), ("phone", members.phone_index)):
        duplicates[channel] = rows, _ = _duplicated(values)
        shared[of_member[rows]] = True
    baskets = purchases.amounts_minor[earn]
    baskets = baskets[baskets > 0]
    minimal = int(np.quantile(baskets, 0.2)) if len(baskets) else 0
    return Activity(ids, enrolled, earns, redeems, earned, first, last, shared, minimal, duplicates)


@dataclass(frozen=True, slots=True, eq=False)
class FraudReport:
    """The alerts and every member's combined fraud score (members on no alert score 0)."""

    alerts: list[FraudAlert]
    member_ids: IntArray  # sorted
    scores: FloatArray
    rates: dict[str, float] = field(default_factory=dict)  # the honest baselines used, for the record

    def member_score(self, member_id: int) -> float:
        i = int(np.searchsorted(self.member_ids, member_id))
        return float(self.scores[i]) if i < len(self.member_ids) and self.member_ids[i] == member_id else 0.0

    def trust(self, member_ids: IntArray) -> FloatArray:
        """1 - fraud score of each of ``member_ids`` (what influence is discounted by)."""
        result: FloatArray = np.ones(len(member_ids), dtype=np.float64)
        if len(self.member_ids):
            i = np.minimum(np.searchsorted(self.member_ids, member_ids), len(self.member_ids) - 1)
            hit = self.member_ids[i] == member_ids
            result[hit] = 1.0 - self.scores[i[hit]]
        return result


# --- sybil farms ----------------------------------------------------------------------------


def sybil_farms(referrals: Referrals, activity: Activity, window_s: int = 3 * DAY_S, alpha: float = 1e-4,
                known: BoolArray | None = None) -> list[FraudAlert]:
    """Referrers whose referees look like made-up accounts, weighed against honest referees.

    Per referee, three pieces of evidence: *spending* (``Activity.category``: never bought,
    one minimal basket, one ordinary purchase, or repeat purchases), *clustered* (enrolled within
    ``window_s`` of another referee of the same referrer: a farm that a daily referral limit
    spreads over days is still clustered), *shared contact* (their fingerprint is another
    member's). Honest rates: the spending mix of referees of unflagged referrers; clustered, the
    mean share per unflagged referrer with two or more referees (each referrer counts once, so
    one viral referrer does not set it); both re-estimated without what was flagged until the
    flagged set stops changing. Fraud rates: ``FRAUD_MIX``, 0.7 clustered. A shared contact only
    adds evidence. Flagged when the log-likelihood ratio exceeds ``-log(alpha)``, or
    ``log(referrers tested / 0.01)`` on a large network, and most referees buy at most once.
    The alert holds the referrer and its inactive referees. ``known``: per ``activity`` member,
    confirmed fraud (kept out of the baseline).
    """
    if len(referrals) == 0:
        return []
    order = np.lexsort((referrals.enrolled_at, referrals.referrer_ids))
    referrers = referrals.referrer_ids[order]
    referees = referrals.referee_ids[order]
    times = referrals.enrolled_at[order]
    starts = np.flatnonzero(np.r_[True, referrers[1:] != referrers[:-1]])
    sizes = np.diff(np.r_[starts, len(referrers)])
    group = np.repeat(np.arange(len(starts)), sizes)
    at = activity.index(referees)
    inactive = activity.inactive[at]
    shared = activity.shared_contact[at]
    same_prev = np.r_[False, group[1:] == group[:-1]]
    gap_prev = np.r_[np.inf, np.diff(times).astype(np.float64)]
    near_prev = same_prev & (gap_prev <= window_s)
    clustered = near_prev | np.r_[near_prev[1:], False]
    category = activity.category[at]
    k = np.add.reduceat(inactive.astype(np.int64), starts)
    b = np.add.reduceat(clustered.astype(np.int64), starts)
    s = np.add.reduceat(shared.astype(np.int64), starts)
    known_rows = known[at] if known is not None else np.zeros(len(at), dtype=bool)
    known_group = np.add.reduceat(known_rows.astype(np.int64), starts) > 0
    # Many referrers are tested at once: the bar rises with their number (Bonferroni at 1 %),
    # never below -log(alpha).
    threshold = max(-math.log(alpha), math.log(max(int((sizes >= 2).sum()), 1) / 0.01))
    flagged = known_group.copy()
    honest = HONEST_PRIOR
    q0 = c0 = 0.0
    evidence = np.zeros(len(starts))
    for _ in range(8):
        honest_rows = ~flagged[group] & ~known_rows
        honest = _honest_mix(category[honest_rows])
        multi = ~flagged & (sizes >= 2)
        q0 = _rate(float((b[multi] / sizes[multi]).sum()), float(multi.sum()))
        c0 = _rate(float(shared[honest_rows].sum()), float(honest_rows.sum()), 0.02)
        spend = np.add.reduceat(_weights(honest)[category], starts)
        evidence = spend + _llr(b, sizes, q0, 0.7) + s * max(math.log(0.5 / c0), 0.0)
        now = ((evidence >= threshold) & (2 * k > sizes)) | known_group
        if np.array_equal(now, flagged):
            break
        flagged = now
    alerts = []
    for g in np.flatnonzero(flagged & (k > 0)).tolist():
        start, size = int(starts[g]), int(sizes[g])
        rows = slice(start, start + size)
        members = (int(referrers[start]), *sorted(int(m) for m in referees[rows][inactive[rows]]))
        counts = np.bincount(category[rows], minlength=4)
        span = int(times[start + size - 1] - times[start])
        alerts.append(FraudAlert(
            FraudKind.SYBIL_FARM, _score(float(evidence[g]), threshold), members, (),
            f"Referrer {members[0]} referred {size} members: {_spending(counts, honest, size)}; {int(b[g])} "
            f"enrolled within {_duration(window_s)} of another of them (honest referrers: "
            f"{q0:.0%}), all {size} within {_duration(span)}"
            + (f"; {int(s[g])} share a contact fingerprint" if s[g] else "")
            + f". Evidence {float(evidence[g]):.1f} against a threshold of {threshold:.1f}.",
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



def shared_contacts(members: Members, activity: Activity, window_s: int = 7 * DAY_S, alpha: float = 1e-3,
                    known: BoolArray | None = None) -> list[FraudAlert]:
    """Groups of members linked by one e-mail or phone fingerprint that look like one person's
    extra accounts, not a household.

    Members are linked when they share either fingerprint; a group is a connected component
    of those links (A-B by e-mail and B-C by phone is one group of three). A household shares
    a phone but each member buys; aliases and typo'd duplicates are made to collect sign-up
    bonuses: they never buy or buy once, often a minimal basket (``Activity.category``), and
    enroll close together (within ``window_s`` of another member of the group). Spending is
    weighed against the mix of the network's members outside flagged groups (a household's
    members are members like any other); close enrollment against unflagged groups. Members
    sharing an *e-mail* fingerprint (one mailbox, after canonicalising aliases and dots) add
    evidence against the network's rate of shared e-mail fingerprints; a shared phone (a
    household's landline) adds none. Flagged when the log-likelihood ratio exceeds
    ``-log(alpha)``
    and most of the group is inactive; the alert holds the group.
    """
    graph = nx.Graph()
    email_shared = np.zeros(len(members), dtype=bool)
    for channel, values in (("email", members.email_index), ("phone", members.phone_index)):
        positions, keys = activity.duplicates.get(channel) or _duplicated(values)
        if channel == "email":
            email_shared[positions] = True
        graph.add_edges_from(zip(positions.tolist(), ((channel, k) for k in keys.tolist()), strict=True))
    groups = []
    for component in nx.connected_components(graph):
        nodes = sorted(node for node in component if isinstance(node, int))
        if len(nodes) < 2:
            continue
        emails = sum(1 for node in component if isinstance(node, tuple) and node[0] == "email")
        phones = sum(1 for node in component if isinstance(node, tuple) and node[0] == "phone")
        groups.append((np.array(nodes, dtype=np.int64), emails, phones))
    if not groups:
        return []
    sizes = np.array([len(rows) for rows, _, _ in groups], dtype=np.int64)
    at = [activity.index(members.ids[rows]) for rows, _, _ in groups]
    categories = activity.category
    k = np.array([int(activity.inactive[i].sum()) for i in at], dtype=np.int64)
    group_counts = np.array([np.bincount(categories[i], minlength=4) for i in at], dtype=np.int64)
    e = np.array([int(email_shared[rows].sum()) for rows, _, _ in groups], dtype=np.int64)
    with_email = float(_present(members.email_index).sum())
    b = np.zeros(len(groups), dtype=np.int64)
    for g, i in enumerate(at):
        times = np.sort(activity.enrolled_at[i])
        near = np.diff(times) <= window_s
        b[g] = int((np.r_[near, False] | np.r_[False, near]).sum())
    known_group = np.array([bool(known[i].any()) if known is not None else False for i in at])
    everyone = np.bincount(categories, minlength=4).astype(np.int64)
    threshold = -math.log(alpha)
    flagged = known_group.copy()
    honest = HONEST_PRIOR
    q0 = r0 = 0.0
    evidence = np.zeros(len(groups))
    for _ in range(8):
        # Members of a household are members like any other: the network's mix without flagged groups.
        outside = everyone - group_counts[flagged].sum(axis=0)
        honest = _honest_mix(np.repeat(np.arange(4, dtype=np.int8), outside))
        q0 = _rate(float(b[~flagged].sum()), float(sizes[~flagged].sum()))
        r0 = _rate(float(e[~flagged].sum()), with_email - float(e[flagged].sum()), 0.01)
        evidence = group_counts @ _weights(honest) + _llr(b, sizes, q0, 0.8) + e * math.log(0.8 / r0)
        now = ((evidence >= threshold) & (2 * k > sizes)) | known_group
        if np.array_equal(now, flagged):
            break
        flagged = now
    alerts = []
    for g in np.flatnonzero(flagged).tolist():
        group_rows, emails, phones = groups[g]
        member_ids = tuple(sorted(int(m) for m in members.ids[group_rows]))
        what = " and ".join(
            part for part in (
                f"{emails} e-mail fingerprint" + ("s" if emails != 1 else "") if emails else "",
                f"{phones} phone fingerprint" + ("s" if phones != 1 else "") if phones else "",
            ) if part
        )
        size = int(sizes[g])
        alerts.append(FraudAlert(
            FraudKind.SHARED_CONTACT, _score(float(evidence[g]), threshold), member_ids, (),
            f"{size} separately enrolled members share {what} (compared by blind index, without decrypting "
            f"contact data); {_spending(group_counts[g], honest, size)}; {int(b[g])} enrolled within "
            f"{_duration(window_s)} of another of them "
            f"(households and other groups: {q0:.0%})"
            + (f"; {int(e[g])} share one mailbox (network rate {r0:.1%})" if e[g] else "")
            + f". Evidence {float(evidence[g]):.1f} against a threshold "
            f"of {threshold:.1f}.",
        ))
    alerts.sort(key=lambda alert: (-alert.score, alert.member_ids[0]))
    return alerts


# --- merchant collusion ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Straws:
    members: IntArray  # candidate straw members, sorted
    pairs: list[tuple[int, int, int, int]]  # (candidate position, earn merchant, redeem merchant, lag s)
    decoys: IntArray  # per candidate: merchants where they earned outside their earn-to-redeem pairs


def _straw_candidates(purchases: Purchases, activity: Activity, life_s: int, lag_s: int,
                      max_earns: int) -> _Straws:
    """Members whose whole life is an earn at one shop and a redemption at another soon after."""
    short = ((activity.earns >= 1) & (activity.redeems >= 1) & (activity.earns <= max_earns)
             & (activity.last_at - activity.enrolled_at <= life_s))
    candidates = activity.ids[short]
    if len(candidates) == 0:
        return _Straws(candidates, [], np.zeros(0, dtype=np.int64))
    position = np.minimum(np.searchsorted(candidates, purchases.member_ids), len(candidates) - 1)
    rows = np.flatnonzero(candidates[position] == purchases.member_ids)
    rows = rows[np.lexsort((purchases.times[rows], position[rows]))]
    earns: dict[int, list[tuple[int, int]]] = {}
    redeems: dict[int, list[tuple[int, int]]] = {}
    for p, merchant, t, kind in zip(position[rows].tolist(), purchases.merchant_ids[rows].tolist(),
                                    purchases.times[rows].tolist(), purchases.kinds[rows].tolist(), strict=True):
        (earns if kind == EARN else redeems).setdefault(p, []).append((merchant, t))
    pairs: list[tuple[int, int, int, int]] = []
    decoys = np.zeros(len(candidates), dtype=np.int64)
    for p, made in earns.items():
        used: set[int] = set()
        for x, earned in made:
            for y, spent in redeems.get(p, []):
                if y != x and 0 <= spent - earned <= lag_s:
                    pairs.append((p, x, y, spent - earned))
                    used.add(x)
        if used:
            decoys[p] = len({x for x, _ in made} - used)
    return _Straws(candidates, pairs, decoys)


def collusion(purchases: Purchases, activity: Activity, lag_s: int = DAY_S, life_s: int = 3 * DAY_S,
              max_earns: int = 3, alpha: float = 1e-2, known: BoolArray | None = None) -> list[FraudAlert]:
    """Rings of merchants (two or more) around which straw members earn and redeem at once.

    A *straw candidate* lives only a few days: at most ``max_earns`` earns, at least one
    redemption, all within ``life_s`` of enrolling, and one redemption at another merchant
    within ``lag_s`` of an earn (a decoy purchase at a third shop does not change that). Honest
    members who redeem at another shop the same day go on buying, so they are no candidates.
    Candidates link their earn and redeem merchants; merchants touched by two or more candidates
    form rings (connected components), so a ring across five shops is one alert and a decoy shop
    touched once stays out. Each ring's candidates ``c`` are compared with ``expected`` = the
    honest candidate rate (candidates outside flagged rings per member who redeems, re-estimated
    without the flagged rings) x the members active at the ring's merchants: flagged when the
    Poisson probability of ``c`` or more is below ``alpha`` divided by the rings tested.
    """
    straws = _straw_candidates(purchases, activity, life_s, lag_s, max_earns)
    if not straws.pairs:
        return []
    candidate, x, y, lag = (np.array(column, dtype=np.int64) for column in zip(*straws.pairs, strict=True))
    merchants, inverse = compact(np.concatenate([x, y]))
    m = len(merchants)
    cx, cy = inverse[:len(x)], inverse[len(x):]
    # Distinct candidates touching each merchant; a merchant touched once is a decoy or chance.
    touch_keys = unique_sorted(np.concatenate([candidate * m + cx, candidate * m + cy]))
    touches = np.bincount(touch_keys % m, minlength=m)
    ring_edge = (touches[cx] >= 2) & (touches[cy] >= 2)
    adjacency = sp.csr_matrix((np.ones(int(ring_edge.sum())), (cx[ring_edge], cy[ring_edge])), shape=(m, m))
    _, label = connected_components(adjacency, directed=False)
    # A candidate belongs to the ring of its ring edges (one label: its merchants are linked).
    member_label = np.full(len(straws.members), -1, dtype=np.int64)
    member_label[candidate[ring_edge]] = label[cx[ring_edge]]
    in_ring = member_label >= 0
    n_labels = int(label.max()) + 1 if m else 0
    c = np.bincount(member_label[in_ring], minlength=n_labels)
    # Members active at each merchant (earned or redeemed there), summed over a ring's merchants.
    touched = np.isin(purchases.merchant_ids, merchants[touches >= 2])
    span = int(purchases.member_ids.max()) + 1
    keys = unique_sorted(purchases.merchant_ids[touched] * span + purchases.member_ids[touched])
    active = np.bincount(np.searchsorted(merchants, keys // span), minlength=m)
    ring_members = np.bincount(label, weights=active, minlength=n_labels)
    rings = np.flatnonzero(c >= 2)
    redeemers = float((activity.redeems > 0).sum())
    known_c = np.zeros(n_labels, dtype=bool)
    if known is not None:
        known_pos = activity.index(straws.members)
        np.logical_or.at(known_c, member_label[in_ring], known[known_pos][in_ring])
    flagged = known_c.copy()
    threshold = -math.log(alpha / max(len(rings), 1))
    tail = np.ones(n_labels)
    expected = np.zeros(n_labels)
    for _ in range(8):
        outside = float(len(straws.members) - c[flagged].sum())
        # Each ring is weighed against the rest of the network without itself (leave-one-out).
        own = np.where(flagged, 0, c).astype(np.float64)
        rates = (outside - own + 1.0) / np.maximum(redeemers - float(c[flagged].sum()) - own + 1000.0, 1.0)
        expected = np.maximum(rates, 1e-6) * ring_members
        tail = gammainc(np.maximum(c, 1), np.maximum(expected, 1e-12))
        evidence = -np.log(np.maximum(tail, 1e-300))
        now = np.zeros(n_labels, dtype=bool)
        now[rings] = evidence[rings] >= threshold
        now |= known_c
        if np.array_equal(now, flagged):
            break
        flagged = now
    evidence = -np.log(np.maximum(tail, 1e-300))
    alerts = []
    for ring in np.flatnonzero(flagged).tolist():
        mine = np.flatnonzero(member_label == ring)
        edges = np.flatnonzero(ring_edge & (member_label[candidate] == ring))
        ring_merchants = unique_sorted(merchants[np.concatenate([cx[edges], cy[edges]])])
        lags = lag[np.isin(candidate, mine)]
        decoyed = int((straws.decoys[mine] > 0).sum())
        shops = ", ".join(str(int(i)) for i in ring_merchants)
        alerts.append(FraudAlert(
            FraudKind.MERCHANT_COLLUSION, _score(float(evidence[ring]), threshold),
            tuple(int(i) for i in straws.members[mine]), tuple(int(i) for i in ring_merchants),
            f"{len(mine)} members earned at one of merchants {shops} and redeemed at another of them "
            f"{_duration(float(np.median(lags)))} later (median), and did nothing else within "
            f"{_duration(life_s)} of enrolling"
            + (f" but a decoy purchase elsewhere ({decoyed} of them)" if decoyed else "")
            + f"; {float(expected[ring]):.2f} expected at the network's honest rate of "
            f"{float(expected[ring]) / max(float(ring_members[ring]), 1.0):.3%} such members among "
            f"the {int(ring_members[ring])} active at these merchants (Poisson probability {float(tail[ring]):.1e}, "
            f"threshold {math.exp(-threshold):.1e}).",
        ))
    alerts.sort(key=lambda alert: (-alert.score, alert.merchant_ids))
    return alerts


# --- everything, with the reviewers' decisions -----------------------------------------------


def detect_fraud(members: Members, purchases: Purchases, referrals: Referrals, *,
                 graph: ReferralGraph | None = None, reviews: Reviews = NO_REVIEWS) -> FraudReport:
    """Every detector on one network, reviewers' decisions applied, and each member's combined score.

    Confirmed members are known fraud: they stay out of every honest baseline, their groups are
    reported, and their score is 1. Dismissed members (and merchants) leave the alerts; an alert
    left with no member (or, for collusion, no merchant) is dropped.
    """
    activity = member_activity(members, purchases)
    known = np.isin(activity.ids, np.fromiter(reviews.confirmed_members, dtype=np.int64))
    referred = graph if graph is not None else referral_graph(referrals, members.ids)
    alerts = (sybil_farms(referrals, activity, known=known) + referral_cycles(referred)
              + shared_contacts(members, activity, known=known) + collusion(purchases, activity, known=known))
    return combine(alerts, reviews)


def apply_reviews(alerts: list[FraudAlert], reviews: Reviews) -> list[FraudAlert]:
    """The alerts without dismissed members and merchants (dropped when nothing is left)."""
    if not reviews.dismissed_members and not reviews.dismissed_merchants:
        return alerts
    kept = []
    for alert in alerts:
        members = tuple(m for m in alert.member_ids if m not in reviews.dismissed_members)
        merchants = tuple(m for m in alert.merchant_ids if m not in reviews.dismissed_merchants)
        if not members or (alert.merchant_ids and not merchants):
            continue
        if members != alert.member_ids or merchants != alert.merchant_ids:
            cleared = len(alert.member_ids) - len(members) + len(alert.merchant_ids) - len(merchants)
            alert = FraudAlert(alert.kind, alert.score, members, merchants,
                               f"{alert.explanation} ({cleared} dismissed by a reviewer and left out.)")
        kept.append(alert)
    return kept


def combine(alerts: list[FraudAlert], reviews: Reviews = NO_REVIEWS) -> FraudReport:
    """Apply ``reviews`` and combine each member's alerts into one score, ``1 - prod(1 - score)``."""
    alerts = apply_reviews(alerts, reviews)
    keep: dict[int, float] = {}
    for alert in alerts:
        for member in alert.member_ids:
            keep[member] = keep.get(member, 1.0) * (1.0 - alert.score)
    for member in reviews.confirmed_members:
        keep[member] = 0.0
    ids_ = np.array(sorted(keep), dtype=np.int64)
    scores = np.array([1.0 - keep[int(m)] for m in ids_], dtype=np.float64)
    return FraudReport(alerts, ids_, scores)
