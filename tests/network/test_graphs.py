from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from coalition.network.graphs import (
    EARN,
    NETWORK,
    REDEEM,
    Flows,
    Members,
    Purchases,
    Referrals,
    affinity,
    affinity_graph,
    argsort_ints,
    bipartite_graph,
    flow_digraph,
    purchase_graph,
    referral_digraph,
    referral_graph,
    unique_sorted,
)

# member, merchant, amount, time, kind
ROWS = [
    (1, 10, 100, 5, EARN),
    (1, 10, 300, 9, EARN),
    (1, 11, 200, 7, EARN),
    (2, 10, 50, 3, EARN),
    (2, 11, 60, 4, EARN),
    (3, 12, 70, 2, EARN),
    (3, 11, 0, 8, REDEEM),
]


def purchases() -> Purchases:
    member, merchant, amount, time, kind = zip(*ROWS, strict=True)
    return Purchases.of(member, merchant, [a // 10 for a in amount], amount, time, kind)


def test_purchase_graph_counts_amounts_and_last_time_per_pair_of_earns() -> None:
    graph = purchase_graph(purchases())

    assert graph.member_ids.tolist() == [1, 2, 3]
    assert graph.merchant_ids.tolist() == [10, 11, 12]
    assert graph.counts.toarray().tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert graph.amounts_minor.toarray().tolist() == [[400, 200, 0], [50, 60, 0], [0, 0, 70]]
    assert graph.last_times.toarray().tolist() == [[9, 7, 0], [3, 4, 0], [0, 0, 2]]
    assert graph.members_per_merchant().tolist() == [2, 2, 1]


def test_affinity_shared_members_jaccard_and_resource_allocation() -> None:
    aff = affinity(purchase_graph(purchases()))

    assert aff.members.tolist() == [2, 2, 1]
    assert aff.shared.toarray().tolist() == [[0, 2, 0], [2, 0, 0], [0, 0, 0]]
    assert aff.jaccard().toarray()[0, 1] == 1.0
    # Members 1 and 2 each buy at two merchants: 1/2 + 1/2.
    assert aff.resource_allocation.toarray()[0, 1] == pytest.approx(1.0)
    graph = affinity_graph(aff)
    assert graph.nodes[12]["members"] == 1
    assert list(graph.edges(data=True)) == [(10, 11, {"shared": 2, "jaccard": 1.0, "weight": 1.0})]


def test_bipartite_graph_matches_the_incidence() -> None:
    graph = bipartite_graph(purchase_graph(purchases()))

    assert nx.is_bipartite(graph)
    assert graph.edges[("member", 1), ("merchant", 10)] == {"purchases": 2, "amount_minor": 400}
    assert graph.number_of_edges() == 5


def test_referral_graph_as_sparse_adjacency_and_digraph_agree() -> None:
    referrals = Referrals.of([1, 1, 2, 1], [2, 3, 4, 2], [10, 11, 12, 10])

    graph = referral_graph(referrals, member_ids=[9])

    assert graph.ids.tolist() == [1, 2, 3, 4, 9]
    assert graph.out_degree().tolist() == [2, 1, 0, 0, 0]  # the repeated row counts once
    digraph = referral_digraph(referrals)
    assert sorted(digraph.edges) == [(1, 2), (1, 3), (2, 4)]
    assert graph.index_of([4, 1]).tolist() == [3, 0]
    with pytest.raises(KeyError, match="unknown member"):
        graph.index_of([5])


def test_flow_digraph_sums_pairs_and_drops_self_and_network_points() -> None:
    flows = Flows.of([10, 10, 11, 12, NETWORK], [11, 11, 10, 12, 10], [5, 6, 7, 8, 9])

    graph = flow_digraph(flows)

    assert sorted(graph.edges(data="points")) == [(10, 11, 11), (11, 10, 7)]
    assert flow_digraph(flows, include_network=True).edges[NETWORK, 10]["points"] == 9


def test_columns_must_have_equal_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        Referrals(np.array([1, 2]), np.array([3]), np.array([0, 0]))
    members = Members.of([1, 2], email_index=["a", None])
    assert members.phone_index.tolist() == [None, None]


@pytest.mark.parametrize("high", [5, 2**40, 2**62])  # packed sort, and argsort when key and row do not fit
def test_argsort_ints_orders_keys_and_unique_sorted_matches_numpy(high: int) -> None:
    rng = np.random.default_rng(high % 1000)
    keys = rng.integers(0, high, size=1000, dtype=np.int64)
    order = argsort_ints(keys)
    assert sorted(order.tolist()) == list(range(1000))  # a permutation
    assert np.array_equal(keys[order], np.sort(keys))
    assert np.array_equal(unique_sorted(keys), np.unique(keys))
    assert len(argsort_ints(keys[:0])) == 0 and len(unique_sorted(keys[:0])) == 0
