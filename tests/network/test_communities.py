from __future__ import annotations

import numpy as np

from coalition.network.communities import merchant_communities
from coalition.network.graphs import EARN, Purchases, affinity, purchase_graph


def planted_purchases(n_groups: int = 4, shops_per_group: int = 6, members_per_group: int = 120,
                      seed: int = 0) -> Purchases:
    """Each group of shops has its own members, who buy at 3 of the group's shops; 5% of
    purchases go to a random shop anywhere (noise across groups)."""
    rng = np.random.default_rng(seed)
    member_ids, merchant_ids = [], []
    for group in range(n_groups):
        shops = np.arange(group * shops_per_group, (group + 1) * shops_per_group) + 100
        for member in range(members_per_group):
            member_id = group * members_per_group + member + 1
            for shop in rng.choice(shops, size=3, replace=False):
                member_ids.append(member_id)
                merchant_ids.append(int(shop) if rng.random() > 0.05 else int(rng.integers(100, 100 + n_groups
                                                                                             * shops_per_group)))
    n = len(member_ids)
    return Purchases.of(member_ids, merchant_ids, [10] * n, [1000] * n, range(n), [EARN] * n)


def test_louvain_finds_the_planted_merchant_communities() -> None:
    aff = affinity(purchase_graph(planted_purchases()))

    found = merchant_communities(aff, seed=0)

    planted = {tuple(range(100 + g * 6, 106 + g * 6)) for g in range(4)}
    assert set(found.groups) == planted
    assert found.modularity > 0.5
    assert found.label_of(100) == found.label_of(105) != found.label_of(106)


def test_communities_are_deterministic_for_a_seed() -> None:
    aff = affinity(purchase_graph(planted_purchases(seed=3)))

    first, second = merchant_communities(aff, seed=7), merchant_communities(aff, seed=7)

    assert first.groups == second.groups
    assert first.labels.tolist() == second.labels.tolist()
    assert merchant_communities(aff, seed=7, backend="networkx").groups == first.groups  # dispatch works


def test_a_merchant_without_shared_members_is_alone() -> None:
    purchases = Purchases.of([1, 1, 2, 2, 3], [10, 11, 10, 11, 12], [1] * 5, [1] * 5, [0] * 5, [EARN] * 5)

    found = merchant_communities(affinity(purchase_graph(purchases)), min_shared=1)

    assert found.groups == ((10, 11), (12,))
