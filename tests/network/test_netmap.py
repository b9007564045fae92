from __future__ import annotations

import pytest

from coalition.network.communities import merchant_communities
from coalition.network.graphs import affinity, flow_digraph, purchase_graph
from coalition.network.netmap import map_graph, network_map, render_map
from coalition.network.synthetic import generate


@pytest.fixture(scope="module")
def network():  # type: ignore[no-untyped-def]
    net = generate(n_members=3000, n_merchants=60, n_purchases=20_000, seed=2)
    aff = affinity(purchase_graph(net.purchases))
    return net, aff, merchant_communities(aff)


def test_png_and_svg_bytes(network) -> None:  # type: ignore[no-untyped-def]
    _, aff, communities = network

    png = network_map(aff, communities, "png")
    svg = network_map(aff, communities, "svg")

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in svg[:2000]


def test_map_graph_nodes_carry_volume_and_community(network) -> None:  # type: ignore[no-untyped-def]
    net, aff, communities = network

    graph = map_graph(aff, communities, max_nodes=20)
    by_flow = map_graph(aff, communities, flows=flow_digraph(net.flows))

    assert graph.number_of_nodes() == 20
    assert all("community" in data and data["volume"] > 0 for _, data in graph.nodes(data=True))
    assert by_flow.number_of_edges() > 0
    with pytest.raises(ValueError, match="png"):
        render_map(graph, "gif")  # type: ignore[arg-type]
