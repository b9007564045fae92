"""Inputs of the network analyses and the graphs built from them.

Every analysis in ``coalition.network`` takes plain columns: one-dimensional numpy arrays of
equal length, one element per database row, in any order. Ids are the database's integer
ids (``int64``); times are epoch seconds (``int64``, UTC). The loader turns one query per
table into one of the input dataclasses below; a notebook or a test builds them by hand.

Member-level structures (a million members, ten million purchases) are kept as
``scipy.sparse`` CSR matrices over *compact indices*: ``ids[i]`` is the database id of row or
column ``i``. networkx graphs are built only where the graph is small (merchants) or on
request for tests and notebooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

EARN = 0
"""``Purchases.kinds`` value of a purchase that earned points."""
REDEEM = 1
"""``Purchases.kinds`` value of a redemption (points honored by the merchant)."""
NETWORK = -1
"""Issuer id of points funded by the network itself (welcome and referral bonuses)."""


def ids(values: Sequence[int] | NDArray[Any]) -> IntArray:
    """Return ``values`` as a 1-D ``int64`` array (no copy when it already is one)."""
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _check_lengths(name: str, **columns: NDArray[Any]) -> None:
    lengths = {key: len(value) for key, value in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{name}: columns must have equal lengths, got {lengths}")


@dataclass(frozen=True, slots=True, eq=False)
class Purchases:
    """Ledger activity, one row per earn or redemption (reversed rows left out by the loader).

    member_ids, merchant_ids: int64[n] — who and where.
    points: int64[n] — points earned (EARN) or honored (REDEEM), always >= 0.
    amounts_minor: int64[n] — basket amount in minor units (0 when unknown, e.g. a redemption).
    times: int64[n] — epoch seconds.
    kinds: int8[n] — ``EARN`` (0) or ``REDEEM`` (1).
    """

    member_ids: IntArray
    merchant_ids: IntArray
    points: IntArray
    amounts_minor: IntArray
    times: IntArray
    kinds: NDArray[np.int8]

    def __post_init__(self) -> None:
        _check_lengths("Purchases", member_ids=self.member_ids, merchant_ids=self.merchant_ids,
                       points=self.points, amounts_minor=self.amounts_minor, times=self.times, kinds=self.kinds)

    @classmethod
    def of(cls, member_ids: Sequence[int] | NDArray[Any], merchant_ids: Sequence[int] | NDArray[Any],
           points: Sequence[int] | NDArray[Any], amounts_minor: Sequence[int] | NDArray[Any],
           times: Sequence[int] | NDArray[Any], kinds: Sequence[int] | NDArray[Any]) -> Purchases:
        """Build from any sequences, converting each column to its numpy dtype."""
        return cls(ids(member_ids), ids(merchant_ids), ids(points), ids(amounts_minor), ids(times),
                   np.asarray(kinds, dtype=np.int8).reshape(-1))

    def __len__(self) -> int:
        return len(self.member_ids)

    def select(self, mask: NDArray[np.bool_]) -> Purchases:
        """The rows where ``mask`` is true."""
        return Purchases(self.member_ids[mask], self.merchant_ids[mask], self.points[mask],
                         self.amounts_minor[mask], self.times[mask], self.kinds[mask])


@dataclass(frozen=True, slots=True, eq=False)
class Referrals:
    """One row per referred member: ``referrer_ids[i]`` referred ``referee_ids[i]``.

    referrer_ids, referee_ids: int64[n] — member ids (``members.referred_by_id`` and ``members.id``).
    enrolled_at: int64[n] — epoch seconds at which the referee enrolled.
    """

    referrer_ids: IntArray
    referee_ids: IntArray
    enrolled_at: IntArray

    def __post_init__(self) -> None:
        _check_lengths("Referrals", referrer_ids=self.referrer_ids, referee_ids=self.referee_ids,
                       enrolled_at=self.enrolled_at)

    @classmethod
    def of(cls, referrer_ids: Sequence[int] | NDArray[Any], referee_ids: Sequence[int] | NDArray[Any],
           enrolled_at: Sequence[int] | NDArray[Any] | None = None) -> Referrals:
        referrers = ids(referrer_ids)
        times = np.zeros(len(referrers), dtype=np.int64) if enrolled_at is None else ids(enrolled_at)
        return cls(referrers, ids(referee_ids), times)

    def __len__(self) -> int:
        return len(self.referrer_ids)


@dataclass(frozen=True, slots=True, eq=False)
class Members:
    """One row per member.

    ids: int64[n] — member ids.
    enrolled_at: int64[n] — epoch seconds.
    email_index, phone_index: object or str arrays [n] — the blind index (keyed HMAC) of the
    member's e-mail and phone; ``None`` or ``""`` when the member gave none. Never the contact
    data itself.
    """

    ids: IntArray
    enrolled_at: IntArray
    email_index: NDArray[Any]
    phone_index: NDArray[Any]

    def __post_init__(self) -> None:
        _check_lengths("Members", ids=self.ids, enrolled_at=self.enrolled_at, email_index=self.email_index,
                       phone_index=self.phone_index)

    @classmethod
    def of(cls, member_ids: Sequence[int] | NDArray[Any], enrolled_at: Sequence[int] | NDArray[Any] | None = None,
           email_index: Sequence[str | None] | NDArray[Any] | None = None,
           phone_index: Sequence[str | None] | NDArray[Any] | None = None) -> Members:
        member_ids = ids(member_ids)
        n = len(member_ids)

        def column(values: Sequence[str | None] | NDArray[Any] | None) -> NDArray[Any]:
            if values is None:
                return np.full(n, None, dtype=object)
            return np.asarray(values, dtype=object).reshape(-1)

        times = np.zeros(n, dtype=np.int64) if enrolled_at is None else ids(enrolled_at)
        return cls(member_ids, times, column(email_index), column(phone_index))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True, eq=False)
class Flows:
    """Cross-redemption attribution: points issued by one merchant and honored by another.

    issuer_ids: int64[n] — merchant that issued the points, or ``NETWORK`` (-1) for network-funded points.
    redeemer_ids: int64[n] — merchant that honored them.
    points: int64[n] — points honored; rows may repeat a pair (they are summed).
    """

    issuer_ids: IntArray
    redeemer_ids: IntArray
    points: IntArray

    def __post_init__(self) -> None:
        _check_lengths("Flows", issuer_ids=self.issuer_ids, redeemer_ids=self.redeemer_ids, points=self.points)

    @classmethod
    def of(cls, issuer_ids: Sequence[int] | NDArray[Any], redeemer_ids: Sequence[int] | NDArray[Any],
           points: Sequence[int] | NDArray[Any]) -> Flows:
        return cls(ids(issuer_ids), ids(redeemer_ids), ids(points))

    def __len__(self) -> int:
        return len(self.issuer_ids)


# --- graphs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ReferralGraph:
    """The referral DiGraph as a sparse adjacency over compact member indices.

    ids: int64[n] — sorted member ids; node ``i`` is member ``ids[i]``.
    adjacency: CSR nxn, ``adjacency[i, j] = 1`` when member ``ids[i]`` referred ``ids[j]``.
    """

    ids: IntArray
    adjacency: sp.csr_matrix

    def index_of(self, member_ids: Sequence[int] | NDArray[Any]) -> IntArray:
        """Compact indices of ``member_ids`` (each must be a node)."""
        return _lookup(self.ids, ids(member_ids), "member")

    def out_degree(self) -> IntArray:
        """Direct referrals per node."""
        degree: IntArray = np.diff(self.adjacency.indptr).astype(np.int64)
        return degree


@dataclass(frozen=True, slots=True, eq=False)
class PurchaseGraph:
    """The member-merchant bipartite purchase graph (earns only) as a sparse incidence matrix.

    member_ids: int64[n] — sorted ids of members with at least one earn.
    merchant_ids: int64[m] — sorted ids of merchants with at least one earn.
    counts: CSR nxm int64 — purchases of member ``i`` at merchant ``j``.
    amounts_minor: CSR nxm int64 — their summed amounts (same sparsity as ``counts``).
    last_times: CSR nxm int64 — epoch seconds of the latest of those purchases (same sparsity).
    """

    member_ids: IntArray
    merchant_ids: IntArray
    counts: sp.csr_matrix
    amounts_minor: sp.csr_matrix
    last_times: sp.csr_matrix

    def members_per_merchant(self) -> IntArray:
        members: IntArray = np.diff(self.counts.tocsc().indptr).astype(np.int64)
        return members


@dataclass(frozen=True, slots=True, eq=False)
class Affinity:
    """The merchant affinity graph: how many members each pair of merchants shares.

    merchant_ids: int64[m] — as in the purchase graph.
    members: int64[m] — distinct members per merchant (``|A|``).
    shared: CSR mxm int64 — ``|A and B|``, zero diagonal.
    resource_allocation: CSR mxm float64 — ``sum over u in A and B of 1/deg(u)`` where deg is the number of
    merchants member ``u`` buys at (the resource-allocation index on the bipartite graph).
    total_members: int — members in the purchase graph (``N``).
    """

    merchant_ids: IntArray
    members: IntArray
    shared: sp.csr_matrix
    resource_allocation: sp.csr_matrix
    total_members: int

    def index_of(self, merchant_id: int) -> int:
        return int(_lookup(self.merchant_ids, ids([merchant_id]), "merchant")[0])

    def jaccard(self) -> sp.csr_matrix:
        """``|A and B| / |A or B|`` on the nonzeros of ``shared`` (CSR mxm float64)."""
        coo = self.shared.tocoo()
        union = self.members[coo.row] + self.members[coo.col] - coo.data
        values = coo.data / np.maximum(union, 1)
        return sp.csr_matrix((values, (coo.row, coo.col)), shape=self.shared.shape)


def _lookup(sorted_ids: IntArray, wanted: IntArray, what: str) -> IntArray:
    positions = np.searchsorted(sorted_ids, wanted)
    positions = np.minimum(positions, max(len(sorted_ids) - 1, 0))
    if len(sorted_ids) == 0 or not np.array_equal(sorted_ids[positions], wanted):
        missing = wanted[(len(sorted_ids) == 0) | (sorted_ids[positions] != wanted)] if len(sorted_ids) else wanted
        raise KeyError(f"unknown {what} id(s): {missing[:5].tolist()}")
    return positions.astype(np.int64)


def referral_graph(referrals: Referrals, member_ids: Sequence[int] | NDArray[Any] | None = None) -> ReferralGraph:
    """The referral DiGraph (referrer → referee) over ``member_ids`` (default: members in any referral)."""
    edges_from = referrals.referrer_ids
    edges_to = referrals.referee_ids
    everyone = np.concatenate([edges_from, edges_to] + ([ids(member_ids)] if member_ids is not None else []))
    nodes, inverse = compact(everyone)
    rows, cols = inverse[:len(edges_from)], inverse[len(edges_from):2 * len(edges_from)]
    n = len(nodes)
    adjacency = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n, n))
    adjacency.sum_duplicates()
    adjacency.data[:] = 1.0
    return ReferralGraph(nodes, adjacency)


def referral_digraph(referrals: Referrals) -> nx.DiGraph:
    """The referral DiGraph as networkx (for small graphs, tests and notebooks)."""
    graph = nx.DiGraph()
    for referrer, referee, at in zip(referrals.referrer_ids.tolist(), referrals.referee_ids.tolist(),
                                     referrals.enrolled_at.tolist(), strict=True):
        graph.add_edge(referrer, referee, enrolled_at=at)
    return graph


def compact(values: IntArray) -> tuple[IntArray, IntArray]:
    """``(np.unique(values), inverse)``. Database ids are dense small integers, so when they
    fit a table of at most ``8 * len(values)`` slots this is a counting pass, O(n), instead of a
    sort (a tenth of the time on ten million rows); otherwise it is ``np.unique``."""
    if len(values) and values.min() >= 0 and values.max() <= 8 * len(values) + 1024:
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        unique: IntArray = np.flatnonzero(present).astype(np.int64)
        slot = np.cumsum(present, dtype=np.int64) - 1
        inverse: IntArray = slot[values]
        return unique, inverse
    unique, inverse = np.unique(values, return_inverse=True)
    return unique.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def unique_sorted(values: IntArray) -> IntArray:
    """``np.unique(values)`` for integers by one sort. (numpy 2.3+'s plain ``np.unique`` hashes
    integers instead of sorting: 25 times slower on ten million int64 on this machine.)"""
    ordered = np.sort(values)
    if len(ordered) == 0:
        return ordered
    kept: IntArray = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
    return kept


def argsort_ints(keys: IntArray) -> IntArray:
    """An order of non-negative int64 ``keys`` (ascending; equal keys in any order).

    When the key and the row number fit one int64 together, it sorts ``key << bits | row`` and
    keeps the row numbers: a plain sort of int64 is about 2.5 times faster than an argsort.
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bits = max(n - 1, 1).bit_length()
    if int(keys.min()) >= 0 and int(keys.max()).bit_length() + bits <= 63:
        packed = (keys << bits) | np.arange(n, dtype=np.int64)
        packed.sort()
        packed &= (1 << bits) - 1
        return packed
    order: IntArray = np.argsort(keys)
    return order


def purchase_graph(purchases: Purchases) -> PurchaseGraph:
    """The member x merchant incidence of earns (counts, amounts, last purchase time).

    Ids are compacted by ``compact``; rows are grouped by (member, merchant) with one argsort
    of a packed key and reduced with ``reduceat``; no Python loop.
    """
    earn = np.flatnonzero(purchases.kinds == EARN)  # only the columns used, not a copy of every column
    member_ids, rows = compact(purchases.member_ids[earn])
    merchant_ids, cols = compact(purchases.merchant_ids[earn])
    m = max(len(merchant_ids), 1)
    keys = rows * m + cols
    del rows, cols
    order = argsort_ints(keys)
    sorted_keys = keys[order]
    del keys
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(sorted_keys) else sorted_keys
    pair_keys = sorted_keys[starts]
    del sorted_keys
    counts = np.diff(np.r_[starts, len(order)]).astype(np.int64)
    earn = earn[order]
    del order
    amounts = np.add.reduceat(purchases.amounts_minor[earn], starts) if len(earn) else earn
    last = np.maximum.reduceat(purchases.times[earn], starts) if len(earn) else earn
    del earn
    pair_rows = pair_keys // m
    indices = (pair_keys % m).astype(np.int32 if m < 2**31 else np.int64)
    indptr = np.searchsorted(pair_rows, np.arange(len(member_ids) + 1)).astype(np.int64)
    shape = (len(member_ids), len(merchant_ids))

    def csr(values: IntArray) -> sp.csr_matrix:
        return sp.csr_matrix((values.astype(np.int64), indices, indptr), shape=shape)

    return PurchaseGraph(member_ids, merchant_ids, csr(counts), csr(amounts), csr(last))


def bipartite_graph(graph: PurchaseGraph) -> nx.Graph:
    """The purchase graph as networkx: nodes ``("member", id)`` and ``("merchant", id)`` with
    ``bipartite`` 0/1, edges weighted by ``purchases`` and ``amount_minor`` (small graphs only)."""
    result = nx.Graph()
    result.add_nodes_from((("member", int(m)) for m in graph.member_ids), bipartite=0)
    result.add_nodes_from((("merchant", int(m)) for m in graph.merchant_ids), bipartite=1)
    coo = graph.counts.tocoo()
    amounts = graph.amounts_minor.tocsr()
    for row, col, count in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True):
        result.add_edge(("member", int(graph.member_ids[row])), ("merchant", int(graph.merchant_ids[col])),
                        purchases=count, amount_minor=int(amounts[row, col]))
    return result


def affinity(graph: PurchaseGraph) -> Affinity:
    """Shared-member counts and the resource-allocation index between merchants.

    Computed as sparse products ``B^T B`` and ``B^T D^-1 B`` of the binary incidence ``B``
    (D = merchants per member); cost is sum of deg(u)^2 over members, no Python loop.
    """
    counts = graph.counts
    degree = np.diff(counts.indptr).astype(np.float64)
    # One product for both: with entries 1 + i/deg(u) on the right, the real part of B^T B' is
    # the shared count and the imaginary part the resource allocation (half the time of two
    # products: scipy's sparse product is two passes over the same structure each time).
    both = np.repeat(1.0 + 1j / np.maximum(degree, 1.0), np.diff(counts.indptr))
    right = sp.csr_matrix((both, counts.indices, counts.indptr), shape=counts.shape)
    left = sp.csr_matrix((np.ones(counts.nnz, dtype=np.complex128), counts.indices, counts.indptr),
                         shape=counts.shape).T.tocsr()
    members = np.diff(left.indptr).astype(np.int64)
    product = (left @ right).tocoo()
    del left, right, both
    off = product.row != product.col
    rows, cols, values = product.row[off], product.col[off], product.data[off]
    del product
    shape = (len(graph.merchant_ids), len(graph.merchant_ids))
    shared = sp.csr_matrix((np.rint(values.real).astype(np.int64), (rows, cols)), shape=shape)
    allocation = sp.csr_matrix((values.imag.copy(), (rows, cols)), shape=shape)
    return Affinity(graph.merchant_ids, members, shared, allocation, len(graph.member_ids))


def affinity_graph(aff: Affinity, min_shared: int = 1) -> nx.Graph:
    """The merchant affinity graph as networkx: nodes are merchant ids (``members`` attribute),
    edges where at least ``min_shared`` members are shared, with ``shared``, ``jaccard`` and
    ``weight`` (= jaccard) attributes."""
    result = nx.Graph()
    for merchant, count in zip(aff.merchant_ids.tolist(), aff.members.tolist(), strict=True):
        result.add_node(merchant, members=count)
    upper = sp.triu(aff.shared, k=1).tocoo()
    keep = upper.data >= min_shared
    rows, cols, shared = upper.row[keep], upper.col[keep], upper.data[keep]
    union = aff.members[rows] + aff.members[cols] - shared
    jaccard = shared / np.maximum(union, 1)
    merchants = aff.merchant_ids
    result.add_edges_from(
        (int(merchants[r]), int(merchants[c]), {"shared": int(s), "jaccard": float(j), "weight": float(j)})
        for r, c, s, j in zip(rows.tolist(), cols.tolist(), shared.tolist(), jaccard.tolist(), strict=True)
    )
    return result


def flow_digraph(flows: Flows, include_network: bool = False) -> nx.DiGraph:
    """Cross-redemption flows: edge issuer → redeemer with summed ``points`` (self-loops dropped:
    points honored where they were issued do not cross). Network-funded points are left out
    unless ``include_network``."""
    keep = flows.issuer_ids != flows.redeemer_ids
    if not include_network:
        keep &= flows.issuer_ids != NETWORK
    issuers, redeemers, points = flows.issuer_ids[keep], flows.redeemer_ids[keep], flows.points[keep]
    merchants, inverse = compact(np.concatenate([issuers, redeemers]))
    m = max(len(merchants), 1)
    pairs, pair_of = compact(inverse[:len(issuers)] * m + inverse[len(issuers):])  # one int key per pair
    totals = np.bincount(pair_of, weights=points, minlength=len(pairs)).astype(np.int64)
    graph = nx.DiGraph()
    graph.add_edges_from((int(merchants[key // m]), int(merchants[key % m]), {"points": int(p)})
                         for key, p in zip(pairs.tolist(), totals.tolist(), strict=True))
    return graph
