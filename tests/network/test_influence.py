from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from coalition.network.graphs import Referrals, referral_digraph, referral_graph
from coalition.network.influence import pagerank, reach, top_referrers

# A hand-made referral tree: 1 referred 2, 3 and 4; 2 referred 5 and 6; 5 referred 7;
# 8 referred 9 (a separate small tree). Member 1 is obviously the most influential.
TREE = Referrals.of([1, 1, 1, 2, 2, 5, 8], [2, 3, 4, 5, 6, 7, 9])


def test_pagerank_order_on_a_hand_made_tree() -> None:
    graph = referral_graph(TREE)

    scores = dict(zip(graph.ids.tolist(), pagerank(graph).tolist(), strict=True))

    assert max(scores, key=scores.__getitem__) == 1
    assert scores[1] > scores[2] > scores[5] > scores[7]
    assert scores[2] > scores[8] > scores[9]
    assert sum(scores.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_pagerank_equals_networkx_on_the_reversed_graph(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    referees = np.arange(1, n)
    referrers = (rng.random(n - 1) * referees).astype(np.int64)  # always an earlier member
    referrals = Referrals.of(referrers, referees)
    graph = referral_graph(referrals)

    ours = pagerank(graph, tol=1e-6)
    expected = nx.pagerank(referral_digraph(referrals).reverse(), alpha=0.85, tol=1e-6)

    assert ours == pytest.approx([expected[i] for i in graph.ids.tolist()], abs=1e-12)


def test_pagerank_on_a_graph_with_cycles_matches_networkx() -> None:
    referrals = Referrals.of([1, 2, 3, 3, 4], [2, 3, 1, 4, 5])
    graph = referral_graph(referrals)

    expected = nx.pagerank(referral_digraph(referrals).reverse(), tol=1e-12, max_iter=2000)

    ours = pagerank(graph, tol=1e-12, max_iter=2000)

    assert ours == pytest.approx([expected[i] for i in graph.ids.tolist()], abs=1e-9)


def test_top_referrers_with_counts_and_reach() -> None:
    graph = referral_graph(TREE)

    top = top_referrers(graph, k=4)

    assert [(r.member_id, r.referrals, r.reach) for r in top[:2]] == [(1, 3, 6), (2, 2, 3)]
    # 5 and 8 each referred one member who referred nobody: same score, same counts.
    assert sorted((r.member_id, r.referrals, r.reach) for r in top[2:]) == [(5, 1, 1), (8, 1, 1)]
    assert reach(graph, int(graph.index_of([5])[0])) == 1
    assert top_referrers(referral_graph(Referrals.of([], [])), k=3) == []
