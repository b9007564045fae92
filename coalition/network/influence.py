"""Referral influence: PageRank on the referral graph, top referrers with their reach.

Credit flows from a referee to its referrer, so PageRank runs on the *reversed* referral graph
(referee -> referrer): a member who referred influential members is influential. The result
equals ``networkx.pagerank(referral_digraph(r).reverse())`` (uniform teleport, dangling mass
spread uniformly, the same stopping rule), computed by sparse power iteration in O(edges)
per step, which is what the old ``nx.pagerank_scipy`` did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

from coalition.network.graphs import FloatArray, IntArray, ReferralGraph


@dataclass(frozen=True, slots=True)
class Referrer:
    """One influential member: ``referrals`` direct referees, ``reach`` all descendants."""

    member_id: int
    pagerank: float
    referrals: int
    reach: int


def pagerank(graph: ReferralGraph, alpha: float = 0.85, tol: float = 1.0e-10, max_iter: int = 300,
             trust: FloatArray | None = None) -> FloatArray:
    """PageRank of each node of ``graph`` (float64[n], aligned with ``graph.ids``, sums to 1).

    ``trust`` (float64[n] in [0, 1], aligned with ``graph.ids``): 1 - each member's fraud score.
    A member passes on only ``trust`` of its rank (the rest goes back to the teleport) and the
    teleport favours members in proportion to their trust, so a farm of sybils lends its
    referrer nothing and a flagged member keeps no rank of its own. Without it (or all ones)
    this is plain PageRank.

    Runs on the reversed graph (referee -> referrer). Stops when the L1 change is below
    ``n * tol`` like networkx; raises ``RuntimeError`` after ``max_iter`` steps. The default
    ``tol`` is tighter than networkx's 1e-6, whose ``n * tol`` is a loose bound on a
    million nodes (an L1 change of 1); pass ``tol=1e-6`` to get networkx's exact numbers.
    """
    n = len(graph.ids)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    # Reversed graph: row j (referee) links to column i (referrer); out-degree of j = referrers of j.
    reverse = graph.adjacency.T.tocsr()
    out_degree = np.asarray(reverse.sum(axis=1)).reshape(-1)
    scale = np.divide(1.0, out_degree, out=np.zeros(n), where=out_degree != 0)
    # transition[j, i] = 1/outdeg(j); x_new = alpha * transition^T x + ...
    transition_t = (sp.diags(scale) @ reverse).T.tocsr()
    dangling = out_degree == 0
    if trust is None:
        passing = np.ones(n)
        teleport = np.full(n, 1.0 / n)
    else:
        passing = np.clip(trust, 0.0, 1.0)
        teleport = passing / passing.sum() if passing.sum() > 0 else np.full(n, 1.0 / n)
    passing = np.where(dangling, 0.0, passing)
    x = teleport.copy()
    for _ in range(max_iter):
        previous = x
        moved = previous * passing
        x = alpha * (transition_t @ moved) + (alpha * (previous.sum() - moved.sum()) + (1.0 - alpha)) * teleport
        if np.abs(x - previous).sum() < n * tol:
            result: FloatArray = x / x.sum()
            return result
    raise RuntimeError(f"PageRank did not converge in {max_iter} iterations (tol {tol})")


def reach(graph: ReferralGraph, index: int) -> int:
    """Members referred directly or indirectly by node ``index`` (its descendants)."""
    order = breadth_first_order(graph.adjacency, index, directed=True, return_predecessors=False)
    return len(order) - 1


def top_referrers(graph: ReferralGraph, k: int = 10, scores: FloatArray | None = None) -> list[Referrer]:
    """The ``k`` members with the highest PageRank among those who referred someone, best first,
    with direct referral counts and reach (a BFS per returned member only).

    ``scores`` is ``pagerank(graph)`` when already computed.
    """
    if scores is None:
        scores = pagerank(graph)
    degree: IntArray = graph.out_degree()
    candidates = np.flatnonzero(degree > 0)
    if len(candidates) == 0:
        return []
    take = min(k, len(candidates))
    best = candidates[np.argpartition(-scores[candidates], take - 1)[:take]]
    # Ties broken by member id so the order is stable across runs.
    best = best[np.lexsort((graph.ids[best], -scores[best]))]
    return [Referrer(int(graph.ids[i]), float(scores[i]), int(degree[i]), reach(graph, int(i))) for i in best]
