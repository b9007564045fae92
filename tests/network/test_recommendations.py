from __future__ import annotations

import numpy as np

from coalition.network.graphs import EARN, Purchases, affinity, purchase_graph
from coalition.network.recommendations import recommend_all, recommend_partners


def planted() -> Purchases:
    """Merchant 1 (the caller) has 100 members. Merchant 2 (small) gets 40 of them and 10 others:
    far above expectation. Merchant 6 gets 30 of them and 270 others: above expectation, less so.
    Merchant 3 (huge) gets 60 of them but also 1400 others: fewer than its size predicts.
    Merchant 4 shares 3 members only (below min_shared). Merchant 5 shares none."""
    rows: list[tuple[int, int]] = []
    rows += [(m, 1) for m in range(1, 101)]
    rows += [(m, 2) for m in range(1, 41)] + [(m, 2) for m in range(1001, 1011)]
    rows += [(m, 3) for m in range(41, 101)] + [(m, 3) for m in range(2001, 3401)]
    rows += [(m, 4) for m in range(1, 4)] + [(m, 4) for m in range(5001, 5005)]
    rows += [(m, 5) for m in range(6001, 6050)]
    rows += [(m, 6) for m in range(71, 101)] + [(m, 6) for m in range(7001, 7271)]
    member, merchant = zip(*rows, strict=True)
    n = len(rows)
    return Purchases.of(member, merchant, [1] * n, [100] * n, [0] * n, [EARN] * n)


def test_recommendations_rank_by_excess_over_expectation() -> None:
    aff = affinity(purchase_graph(planted()))

    recommended = recommend_partners(aff, 1, k=10)

    assert [r.merchant_id for r in recommended] == [2, 6]
    small, medium = recommended
    assert (small.shared_members, medium.shared_members) == (40, 30)
    total = 100 + 10 + 1400 + 4 + 49 + 270
    assert small.expected_shared == 100 * 50 / total
    assert small.lift > medium.lift > 1
    assert small.score > medium.score
    assert small.resource_allocation > 0


def test_recommendations_for_every_merchant_never_include_itself() -> None:
    result = recommend_all(affinity(purchase_graph(planted())), k=5, min_shared=1)

    assert set(result) == {1, 2, 3, 4, 5, 6}
    assert all(r.merchant_id != merchant for merchant, recs in result.items() for r in recs)
    assert result[5] == []
    assert np.all([r.shared_members >= 1 for recs in result.values() for r in recs])
