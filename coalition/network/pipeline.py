"""Every analysis in one call: arrays in, one ``NetworkAnalysis`` out, with the time per stage.

Order: build the graphs once (purchase incidence, affinity, referral adjacency, flows), then
run each analysis on them. Nothing here touches the database; ``coalition analyze`` loads
the columns, calls ``analyze_all`` and stores the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import networkx as nx
import numpy as np

from coalition.network.communities import Communities, merchant_communities
from coalition.network.fraud import (
    NO_REVIEWS,
    FraudAlert,
    FraudReport,
    Reviews,
    collusion,
    combine,
    member_activity,
    referral_cycles,
    shared_contacts,
    sybil_farms,
)
from coalition.network.graphs import (
    Affinity,
    FloatArray,
    Flows,
    Members,
    PurchaseGraph,
    Purchases,
    ReferralGraph,
    Referrals,
    affinity,
    flow_digraph,
    purchase_graph,
    referral_graph,
)
from coalition.network.influence import Referrer, pagerank, top_referrers
from coalition.network.recommendations import Recommendation, recommend_all
from coalition.network.segments import RFM, LoyaltySegments, loyalty_segments, network_rfm

StageCallback = Callable[[str, float], None]

STAGES: tuple[str, ...] = (
    "purchase_graph", "affinity", "referral_graph", "flow_graph", "member_activity", "fraud_sybil",
    "fraud_shared_contacts", "fraud_collusion", "pagerank", "top_referrers", "communities", "recommendations", "rfm",
    "segments", "map",
)
"""The stages ``analyze_all`` reports to ``on_stage``, in order ("map" only when drawing)."""


@dataclass(frozen=True, slots=True, eq=False)
class NetworkAnalysis:
    """All results of one run. ``timings_s``: seconds per stage, in run order."""

    purchase_graph: PurchaseGraph
    affinity: Affinity
    referral_graph: ReferralGraph
    flows: nx.DiGraph
    pagerank: FloatArray
    top_referrers: list[Referrer]
    communities: Communities
    recommendations: dict[int, list[Recommendation]]
    alerts: list[FraudAlert]
    fraud: FraudReport
    network_rfm: RFM
    segments: LoyaltySegments
    map_png: bytes | None
    map_svg: bytes | None
    timings_s: dict[str, float]
    # The drawn map as data, for the admin page's interactive map: nodes [id, x, y, community,
    # volume] (x, y in -1..1) and edges [a, b, shared members]. None when not drawn.
    map_layout: dict[str, list[list[float]]] | None = None


def analyze_all(members: Members, purchases: Purchases, referrals: Referrals, flows: Flows, as_of: int, *,
                top_k: int = 20, recommendations_k: int = 10, seed: int = 0, draw_map: bool = True,
                merchant_names: Mapping[int, str] | None = None,
                on_stage: StageCallback | None = None, reviews: Reviews = NO_REVIEWS) -> NetworkAnalysis:
    """Run every analysis with default thresholds; ``as_of`` (epoch seconds) anchors recency.

    Fraud runs before influence: PageRank is discounted by each member's fraud score.
    ``reviews``: reviewers' confirm/dismiss decisions (``fraud.Reviews``).

    ``on_stage(name, seconds)`` is called after each stage (progress for the CLI).
    """
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - started
        if on_stage is not None:
            on_stage(name, timings[name])

    with stage("purchase_graph"):
        purchased = purchase_graph(purchases)
    with stage("affinity"):
        aff = affinity(purchased)
    with stage("referral_graph"):
        referred = referral_graph(referrals, members.ids)
    with stage("flow_graph"):
        flow = flow_digraph(flows)
    with stage("member_activity"):
        activity = member_activity(members, purchases)
        known = np.isin(activity.ids, np.fromiter(reviews.confirmed_members, dtype=np.int64))
    with stage("fraud_sybil"):  # referral fraud: sybil farms and referral loops
        alerts = sybil_farms(referrals, activity, known=known) + referral_cycles(referred)
    with stage("fraud_shared_contacts"):
        alerts += shared_contacts(members, activity, known=known)
    with stage("fraud_collusion"):
        alerts += collusion(purchases, activity, known=known)
        fraud = combine(alerts, reviews)
    with stage("pagerank"):
        scores = pagerank(referred, trust=fraud.trust(referred.ids))
    with stage("top_referrers"):
        top = top_referrers(referred, top_k, scores)
    with stage("communities"):
        found = merchant_communities(aff, seed=seed)
    with stage("recommendations"):
        recommended = recommend_all(aff, recommendations_k)
    with stage("rfm"):
        rfm = network_rfm(purchased, as_of)
    with stage("segments"):
        segmented = loyalty_segments(purchased, as_of)
    png = svg = None
    layout: dict[str, list[list[float]]] | None = None
    if draw_map:
        from coalition.network.netmap import layout_of, map_graph, render_map  # matplotlib only when drawing

        with stage("map"):
            drawn = map_graph(aff, found)
            positions = layout_of(drawn, seed)
            png = render_map(drawn, "png", layout=positions, labels=merchant_names)
            svg = render_map(drawn, "svg", layout=positions, labels=merchant_names)
            layout = {
                "nodes": [[int(n), round(float(positions[n][0]), 4), round(float(positions[n][1]), 4),
                           int(data.get("community") if data.get("community") is not None else -1),
                           int(data.get("volume", 0))] for n, data in drawn.nodes(data=True)],
                "edges": [[int(a), int(b), float(w)] for a, b, w in drawn.edges(data="weight", default=0.0)],
            }
    return NetworkAnalysis(purchased, aff, referred, flow, scores, top, found, recommended, fraud.alerts, fraud, rfm,
                           segmented, png, svg, timings, layout)
