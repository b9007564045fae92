"""Network analysis: arrays in, graphs and metrics out (no database, no API types).

Inputs are the column dataclasses of ``graphs`` (``Purchases``, ``Referrals``, ``Members``,
``Flows``); ``analyze_all`` runs every analysis. The modules:

- ``graphs``: inputs; referral adjacency, member x merchant purchase incidence, merchant affinity, flows
- ``influence``: PageRank on the referral graph, top referrers with reach
- ``communities``: Louvain on the merchant affinity graph
- ``recommendations``: partner recommendations as link prediction (hub-corrected resource allocation, shared partners)
- ``fraud``: sybil farms, referral cycles, shared contacts, collusion rings, scored against the honest network
- ``reviews``: reviewers' confirm/dismiss decisions (``fraud_reviews``), read by each run
- ``segments``: RFM and the four loyalty types with rules and suggested actions
- ``netmap``: the network map as PNG or SVG (imports matplotlib; import it directly); ``mapwords``: its words
- ``map_languages``: the stored map in the reader's language, drawn once per run and language
- ``synthetic``: a seeded synthetic network with planted fraud, for tests and benchmarks
- ``pipeline``: ``analyze_all``
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# The package's names load on first use (PEP 562): the API process imports the insight store
# from this package, and should not pay for numpy, scipy and networkx until it analyses.
_EXPORTS = {
    "EARN": "graphs", "NETWORK": "graphs", "REDEEM": "graphs", "Flows": "graphs", "Members": "graphs",
    "Purchases": "graphs", "Referrals": "graphs", "NetworkAnalysis": "pipeline", "analyze_all": "pipeline",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"coalition.network.{_EXPORTS[name]}"), name)
