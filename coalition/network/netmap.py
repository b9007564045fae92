"""The network map: merchants sized by volume, linked by shared members or cross-redemptions,
coloured by community. Rendered to PNG or SVG bytes on a bare ``matplotlib.figure.Figure``
(no pyplot, no global backend state), so it is safe in a server process.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from matplotlib.figure import Figure

from coalition.network.communities import Communities, strongest_edges
from coalition.network.graphs import Affinity
from coalition.network.mapwords import Format, MapWords

__all__ = ["Format", "MapWords", "graph_of_layout", "layout_of", "map_graph", "network_map", "render_map",
           "render_stored_map"]


def map_graph(aff: Affinity, communities: Communities, volumes: Mapping[int, int] | None = None,
              flows: nx.DiGraph | None = None, max_neighbors: int = 5, max_nodes: int = 400) -> nx.Graph:
    """The graph that is drawn: the ``max_nodes`` biggest merchants (by ``volumes``, default
    distinct members) with ``volume`` and ``community``; edges are the ``max_neighbors``
    strongest shared-member links per merchant (``weight`` = shared members) or, when ``flows``
    is given, cross-redemption points between the two merchants."""
    graph = nx.Graph()
    volume_of = aff.members if volumes is None else np.array([volumes.get(int(m), 0) for m in aff.merchant_ids])
    biggest = np.sort(np.argsort(-volume_of, kind="stable")[:max_nodes])
    for i in biggest.tolist():
        merchant = int(aff.merchant_ids[i])
        graph.add_node(merchant, volume=int(volume_of[i]), community=communities.label_of(merchant))
    if flows is not None:
        for issuer, redeemer, data in flows.edges(data=True):
            if issuer in graph and redeemer in graph:
                previous = graph.get_edge_data(issuer, redeemer, {"weight": 0})["weight"]
                graph.add_edge(issuer, redeemer, weight=previous + data.get("points", 0))
        return graph
    shown = sp.csr_matrix(aff.shared, dtype=np.float64)[biggest][:, biggest]
    kept = strongest_edges(shown, max_neighbors)
    ids = aff.merchant_ids[biggest]
    graph.add_weighted_edges_from(
        (int(ids[r]), int(ids[c]), float(w)) for r, c, w in zip(kept.row.tolist(), kept.col.tolist(),
                                                                 kept.data.tolist(), strict=True))
    return graph


Layout = dict[int, Any]


def layout_of(graph: nx.Graph, seed: int = 0) -> Layout:
    """Seeded spring layout (unweighted, so a tight neighbourhood does not collapse to a point)."""
    if not graph.number_of_nodes():
        return {}
    positions: Layout = nx.spring_layout(graph, seed=seed, iterations=50)
    return positions


ENGLISH = MapWords()
LABELLED = 30  # names drawn for the biggest merchants only: hundreds of names would cover the map


def graph_of_layout(layout: Mapping[str, Any]) -> tuple[nx.Graph, Layout]:
    """The drawn graph and its positions back from the stored layout (the analysis run's ``map``:
    nodes ``[id, x, y, community, volume]``, edges ``[a, b, weight]``), to draw it again in
    another language without the run's data."""
    graph = nx.Graph()
    positions: Layout = {}
    for merchant_id, x, y, community, volume in layout.get("nodes", []):
        graph.add_node(int(merchant_id), volume=int(volume), community=int(community))
        positions[int(merchant_id)] = np.array([float(x), float(y)])
    graph.add_weighted_edges_from((int(a), int(b), float(w)) for a, b, w in layout.get("edges", [])
                                  if int(a) in positions and int(b) in positions)
    return graph, positions


def render_map(graph: nx.Graph, fmt: Format = "png", seed: int = 0, size_in: float = 10.0,
               layout: Layout | None = None, labels: Mapping[int, str] | None = None,
               words: MapWords = ENGLISH) -> bytes:
    """Draw ``map_graph(...)`` (``layout`` default: ``layout_of(graph, seed)``); return PNG or SVG bytes.

    With ``labels`` (merchant id -> name) the ``LABELLED`` biggest merchants are named, and a
    legend names the communities' colours. ``words``: the title and legend, in the reader's language.
    """
    if fmt not in ("png", "svg"):
        raise ValueError(f"map format must be 'png' or 'svg', got {fmt!r}")
    figure = Figure(figsize=(size_in, size_in))
    axes = figure.subplots()
    axes.set_axis_off()
    axes.set_title(words.title, language=words.language)
    if graph.number_of_nodes():
        if layout is None:
            layout = layout_of(graph, seed)
        nodes = list(graph.nodes)
        volume = np.array([graph.nodes[n].get("volume", 1) for n in nodes], dtype=np.float64)
        sizes = 10.0 + 12000.0 / max(len(nodes), 20) * np.sqrt(volume / max(volume.max(), 1.0))
        colours = [graph.nodes[n].get("community", 0) for n in nodes]
        weights = np.array([d.get("weight", 1.0) for _, _, d in graph.edges(data=True)], dtype=np.float64)
        widths = 0.2 + 3.0 * weights / weights.max() if len(weights) else []
        nx.draw_networkx_edges(graph, layout, ax=axes, width=widths, alpha=0.3, edge_color="grey")
        drawn = nx.draw_networkx_nodes(graph, layout, ax=axes, nodelist=nodes, node_size=sizes, node_color=colours,
                                       cmap="tab20", alpha=0.9, linewidths=0.3, edgecolors="black")
        if labels:
            biggest = [nodes[i] for i in np.argsort(-volume, kind="stable")[:LABELLED]]
            # Names are data in their own script: the shaper finds each name's direction itself.
            nx.draw_networkx_labels(graph, layout, ax=axes, labels={n: labels.get(n, str(n)) for n in biggest},
                                    font_size=8, verticalalignment="bottom")
            communities = sorted(set(colours))[:20]
            if len(communities) > 1:
                handles = [axes.scatter([], [], color=drawn.cmap(drawn.norm(c)),
                                        label=words.community.format(n=c + 1)) for c in communities]
                legend = axes.legend(handles=handles, loc="upper right" if words.rtl else "upper left",
                                     bbox_to_anchor=(0.0 if words.rtl else 1.0, 1.0), fontsize=8, frameon=False,
                                     title=words.legend_title, title_fontsize=8, markerfirst=not words.rtl,
                                     alignment="right" if words.rtl else "left")
                for text in [legend.get_title(), *legend.get_texts()]:
                    text.set_language(words.language)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=100 if fmt == "png" else 72, bbox_inches="tight")
    return buffer.getvalue()


def network_map(aff: Affinity, communities: Communities, fmt: Format = "png", volumes: Mapping[int, int] | None = None,
                flows: nx.DiGraph | None = None, seed: int = 0) -> bytes:
    """Shortcut: ``render_map(map_graph(...), fmt)``."""
    return render_map(map_graph(aff, communities, volumes, flows), fmt, seed)


def render_stored_map(layout: Mapping[str, Any], fmt: Format, labels: Mapping[int, str], words: MapWords) -> bytes:
    """The map an analysis run stored as data (its ``map`` layout), drawn again with ``words``."""
    graph, positions = graph_of_layout(layout)
    return render_map(graph, fmt, layout=positions, labels=labels, words=words)
