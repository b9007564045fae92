"""Partner recommendations: link prediction on the merchant affinity graph.

For the calling merchant A and every other merchant B:

- ``shared`` = |A and B|, members who bought at both;
- ``expected`` = |A| * |B| / N, what they would share if members chose shops independently;
- ``lift`` = shared / expected;
- ``resource_allocation`` = sum over shared members u of 1/deg(u): a member who buys at
  few shops says more about A and B belonging together than one who buys everywhere.

Score (the ranking): ``(shared - expected) / sqrt(expected)``, the excess of shared members
over independence in standard deviations of a Poisson count. It favours partners that share
*many more* members than expected, so a tiny shop with 2 shared members and a huge lift
does not top the list. Only merchants with ``shared >= min_shared`` and ``lift > 1`` are
recommended. Only counts leave this module, never another merchant's members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coalition.network.graphs import Affinity


@dataclass(frozen=True, slots=True)
class Recommendation:
    merchant_id: int
    shared_members: int
    expected_shared: float
    lift: float
    resource_allocation: float
    score: float


def recommend_partners(aff: Affinity, merchant_id: int, k: int = 10, min_shared: int = 5) -> list[Recommendation]:
    """Up to ``k`` partners for ``merchant_id``, best first (see the module docstring for the rule)."""
    a = aff.index_of(merchant_id)
    row = aff.shared.getrow(a)
    others = row.indices.astype(np.int64)
    shared = row.data.astype(np.float64)
    allocation_row = aff.resource_allocation.getrow(a).toarray().reshape(-1)
    expected = aff.members[a] * aff.members[others] / max(aff.total_members, 1)
    expected = np.maximum(expected, 1e-12)
    lift = shared / expected
    score = (shared - expected) / np.sqrt(expected)
    keep = (shared >= min_shared) & (lift > 1.0) & (others != a)
    others, shared, expected, lift, score = others[keep], shared[keep], expected[keep], lift[keep], score[keep]
    order = np.lexsort((aff.merchant_ids[others], -score))[:k]
    return [
        Recommendation(int(aff.merchant_ids[others[i]]), int(shared[i]), float(expected[i]), float(lift[i]),
                       float(allocation_row[others[i]]), float(score[i]))
        for i in order
    ]


def recommend_all(aff: Affinity, k: int = 10, min_shared: int = 5) -> dict[int, list[Recommendation]]:
    """``recommend_partners`` for every merchant, keyed by merchant id."""
    return {int(m): recommend_partners(aff, int(m), k, min_shared) for m in aff.merchant_ids}
