"""Network analysis: arrays in, graphs and metrics out (no database, no API types).

Inputs are the column dataclasses of ``graphs`` (``Purchases``, ``Referrals``, ``Members``,
``Flows``); ``analyze_all`` runs every analysis. The modules:

- ``graphs``: inputs; referral adjacency, member x merchant purchase incidence, merchant affinity, flows
- ``influence``: PageRank on the referral graph, top referrers with reach
- ``communities``: Louvain on the merchant affinity graph
- ``recommendations``: partner recommendations (shared members vs expectation, resource allocation)
- ``fraud``: sybil farms, referral cycles, shared contact fingerprints, merchant collusion
- ``segments``: RFM and the four loyalty types with rules and suggested actions
- ``netmap``: the network map as PNG or SVG (imports matplotlib; import it directly)
- ``synthetic``: a seeded synthetic network with planted fraud, for tests and benchmarks
- ``pipeline``: ``analyze_all``
"""

from __future__ import annotations

from coalition.network.graphs import EARN, NETWORK, REDEEM, Flows, Members, Purchases, Referrals
from coalition.network.pipeline import NetworkAnalysis, analyze_all

__all__ = ["EARN", "NETWORK", "REDEEM", "Flows", "Members", "NetworkAnalysis", "Purchases", "Referrals", "analyze_all"]
