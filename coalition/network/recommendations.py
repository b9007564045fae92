"""Partner recommendations: link prediction on the member-merchant graph.

A good partner for merchant A is a merchant B that A's customers *would* shop at, whether or
not they already do. Two kinds of evidence, both from the member x merchant purchase graph:

- **direct**: the resource-allocation index ``RA(A, B) = sum over shared members u of
  1/deg(u)`` (a member who buys at few shops says more than one who buys everywhere), turned
  into positive pointwise mutual information against what A's and B's totals predict:
  ``direct = max(0, log(RA(A, B) * total / (RA(A) * RA(B))))``. Dividing by the totals is the
  hub correction: a shop everyone visits shares many members with everyone, and that is
  expected, not a partnership.
- **shared partners**: the cosine similarity of A's and B's rows of ``direct`` (neighbourhood
  overlap), each merchant counting as its own partner with its mean partner weight (so a direct
  link counts too): A and B belong together when the shops their customers like are the same
  shops, even if they share few customers yet.

Score: that similarity, in [0, 1]. Every pair is scored, linked or not, so a pair that clearly
belongs together through its neighbours is recommended before it shares many customers.
Validated by holding links out (``bench/insight_quality.py``, BENCHMARKS.md): the similarity
alone ranked held-out pairs better than a mix with ``direct`` (held-out pairs have no direct
link) and as well at the top five. Each recommendation says why: shared members against the
number expected by chance (``|A| |B| / N``), and partners in common. Only counts leave this
module, never another merchant's members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coalition.network.graphs import Affinity, FloatArray


@dataclass(frozen=True, slots=True)
class Recommendation:
    merchant_id: int
    shared_members: int
    expected_shared: float
    lift: float
    resource_allocation: float
    score: float
    shared_partners: int = 0
    partner_similarity: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class LinkScores:
    """Dense merchant x merchant scores (aligned with ``aff.merchant_ids``)."""

    direct: FloatArray  # PPMI of the resource-allocation index
    similarity: FloatArray  # cosine of rows of ``direct`` (each merchant its own partner)
    score: FloatArray  # = similarity (the ranking)
    partners: FloatArray  # 1 where direct > 0 (a merchant's partners)


def link_scores(aff: Affinity) -> LinkScores:
    """Score every pair of merchants (see the module docstring); O(m^2) memory, m = merchants."""
    m = len(aff.merchant_ids)
    ra = aff.resource_allocation.toarray().astype(np.float64) if m else np.zeros((0, 0))
    totals = ra.sum(axis=1)
    grand = max(float(totals.sum()), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(ra * grand / np.maximum(np.outer(totals, totals), 1e-12))
    direct = np.where(ra > 0, np.maximum(pmi, 0.0), 0.0)
    np.fill_diagonal(direct, 0.0)
    partners = direct > 0
    profile = direct + np.diag(direct.sum(axis=1) / np.maximum(partners.sum(axis=1), 1))
    unit = (profile / np.maximum(np.linalg.norm(profile, axis=1), 1e-12)[:, None]).astype(np.float32)
    similarity = (unit @ unit.T).astype(np.float64)  # float32 product: half the time on 2000 merchants
    np.fill_diagonal(similarity, 0.0)
    return LinkScores(direct, similarity, similarity, partners.astype(np.float64))


def recommend_partners(aff: Affinity, merchant_id: int, k: int = 10, min_shared: int = 0,
                       scores: LinkScores | None = None) -> list[Recommendation]:
    """Up to ``k`` partners for ``merchant_id``, best first (the rule is in the module docstring).

    ``min_shared``: leave out partners sharing fewer members (0: unlinked pairs are candidates too).
    """
    scores = scores if scores is not None else link_scores(aff)
    a = aff.index_of(merchant_id)
    row = scores.score[a]
    shared_row = aff.shared.getrow(a).toarray().reshape(-1)
    ra_row = aff.resource_allocation.getrow(a).toarray().reshape(-1)
    candidates = np.flatnonzero((row > 0) & (shared_row >= min_shared))
    candidates = candidates[candidates != a]
    order = candidates[np.lexsort((aff.merchant_ids[candidates], -row[candidates]))][:k]
    common = dict(zip(order.tolist(), (scores.partners[order] @ scores.partners[a]).tolist(), strict=True))
    result = []
    for b in order.tolist():
        shared = int(shared_row[b])
        expected = max(float(aff.members[a] * aff.members[b] / max(aff.total_members, 1)), 1e-12)
        partners = int(common[b])
        result.append(Recommendation(
            int(aff.merchant_ids[b]), shared, expected, shared / expected, float(ra_row[b]), float(row[b]),
            partners, float(scores.similarity[a, b]),
            f"{shared} shared customers against {expected:.1f} expected by chance (lift {shared / expected:.1f}); "
            f"{partners} partners in common (similarity of the shops your customers like: "
            f"{float(scores.similarity[a, b]):.2f}).",
        ))
    return result


def recommend_all(aff: Affinity, k: int = 10, min_shared: int = 0) -> dict[int, list[Recommendation]]:
    """``recommend_partners`` for every merchant, keyed by merchant id (the pair scores computed once)."""
    scores = link_scores(aff)
    return {int(m): recommend_partners(aff, int(m), k, min_shared, scores) for m in aff.merchant_ids}
