from __future__ import annotations

import numpy as np

from coalition.network.graphs import EARN, Purchases, affinity, purchase_graph
from coalition.network.recommendations import link_scores, recommend_all, recommend_partners


def clustered(hide: tuple[int, int] | None = (1, 2)) -> Purchases:
    """Two neighbourhoods (shops 1-4 and 5-8) and a hub (9) that half of everyone visits.
    Members buy at two or three shops of their neighbourhood; the pair ``hide`` never shares
    a customer (a partnership that does not exist yet)."""
    rng = np.random.default_rng(3)
    rows: list[tuple[int, int]] = []
    for member in range(1, 801):
        hood = [1, 2, 3, 4] if member <= 400 else [5, 6, 7, 8]
        shops = [int(s) for s in rng.choice(hood, size=int(rng.integers(2, 4)), replace=False)]
        if hide is not None and set(hide) <= set(shops):
            shops.remove(hide[member % 2])
        if rng.random() < 0.5:
            shops.append(9)
        if rng.random() < 0.05:
            shops.append(int(rng.integers(1, 9)))
        rows += [(member, shop) for shop in set(shops)]
    member, merchant = zip(*rows, strict=True)
    n = len(rows)
    return Purchases.of(member, merchant, [1] * n, [100] * n, [0] * n, [EARN] * n)


def test_a_pair_that_shares_no_customer_yet_is_recommended_through_shared_partners() -> None:
    aff = affinity(purchase_graph(clustered()))
    assert aff.shared[aff.index_of(1), aff.index_of(2)] <= 5  # (only the 5 % who shop anywhere)

    recommended = recommend_partners(aff, 1, k=3)

    assert {r.merchant_id for r in recommended} == {2, 3, 4}
    two = next(r for r in recommended if r.merchant_id == 2)
    assert two.shared_partners >= 2
    assert "partners in common" in two.reason and "expected by chance" in two.reason


def test_the_hub_is_not_everyone_s_best_partner() -> None:
    aff = affinity(purchase_graph(clustered(hide=None)))
    scores = link_scores(aff)
    hub = aff.index_of(9)

    for merchant in range(1, 9):
        a = aff.index_of(merchant)
        neighbours = [aff.index_of(m) for m in ((1, 2, 3, 4) if merchant <= 4 else (5, 6, 7, 8)) if m != merchant]
        assert min(scores.score[a, b] for b in neighbours) > scores.score[a, hub]


def test_recommendations_for_every_merchant_never_include_itself() -> None:
    result = recommend_all(affinity(purchase_graph(clustered())), k=5)

    assert set(result) == set(range(1, 10))
    assert all(r.merchant_id != merchant for merchant, recs in result.items() for r in recs)
    assert all(len(recs) <= 5 for recs in result.values())
    assert all(r.expected_shared > 0 for recs in result.values() for r in recs)
