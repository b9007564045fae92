"""Running the network analysis: load → analyse → store, with progress.

``run_analysis`` is what ``coalition analyze`` and the scheduler's analysis job
(``coalition.worker``) call. The analysis itself (``pipeline.analyze_all``) is
CPU-bound and runs in a worker thread, so a server's event loop keeps answering meanwhile.

The results are cut into scopes before they are stored (``coalition.network.store``):

- ``network``: the admin's view: totals, top referrers, the best partner pairs, merchant
  communities, fraud alerts with their explanations, and loyalty segments summed over all
  (member, merchant) relationships.
- ``merchant:<id>``: one merchant's view. Its *members* are the members who earned or redeemed
  there or were enrolled there; lists of members (top referrers, win-back) hold only those, so a
  merchant never sees another merchant's customers. Counts, partner recommendations and the
  merchant's community are network aggregates over merchants, which every partner may see.
- ``rfm:<id>``: RFM scores and loyalty type (``LoyaltyType`` number) of each of the merchant's
  buyers at the merchant, as binary columns sorted by member id (``store.rfm_blob``); read only
  when one member's RFM is asked for.
- ``map.png`` / ``map.svg``: the network map.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.members.service import backfill_fingerprints
from coalition.network.alerts import alert_changes, seen_keys
from coalition.network.graphs import argsort_ints, unique_sorted
from coalition.network.loader import NetworkData, load_network
from coalition.network.loyalty import LoyaltyType
from coalition.network.pipeline import STAGES, NetworkAnalysis, analyze_all
from coalition.network.reviews import load_reviews
from coalition.network.segments import SUGGESTED_ACTIONS
from coalition.network.store import NETWORK_SCOPE, InsightStore, merchant_scope, rfm_blob, rfm_scope

logger = logging.getLogger("coalition.network.jobs")

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: ``done`` of ``total`` steps finished, now at ``stage``."""

LOAD_STAGES = ["merchants", "members", "referrals", "purchases", "flows"]
LIST_LIMIT = 100  # members per win-back or referrer list, pairs in the admin's recommendations


@dataclass(frozen=True)
class RunReport:
    run_id: int
    started_at: dt.datetime
    computed_at: dt.datetime
    summary: dict[str, Any]
    map_png: bytes | None
    map_svg: bytes | None


async def run_analysis(
    db: Database, settings: Settings, *, store: InsightStore | None = None, progress: Progress | None = None,
    draw_map: bool = True, now: dt.datetime | None = None, keys: NetworkKeys | None = None,
) -> RunReport:
    """One analysis run, recorded in ``insight_runs`` whether it succeeds or fails.

    It first fills in the contact fingerprints that rows enrolled before migration 0004 lack
    (``backfill_fingerprints``: it needs ``keys``, made from ``settings`` when not given).
    """
    report = progress or (lambda stage, done, total: None)
    total = len(LOAD_STAGES) + len(STAGES) - (0 if draw_map else 1) + 2
    done = 0

    def step(stage: str) -> None:
        nonlocal done
        report(stage, done, total)
        done += 1

    own_store = store is None
    store = store or InsightStore(db, settings.redis_url, settings.insights_cache_s)
    run_id = await store.start_run({"draw_map": draw_map}, now=now)
    try:
        started = time.perf_counter()
        filled = await backfill_fingerprints(db, keys or NetworkKeys.from_settings(settings))
        if filled:
            logger.info("filled in the contact fingerprints of %d members enrolled before them", filled)
        data = await load_network(db, progress=step, now=now)
        reviews = await load_reviews(db)
        load_s = time.perf_counter() - started

        def on_stage(name: str, seconds: float) -> None:
            step(name)

        analysis = await asyncio.to_thread(
            analyze_all, data.members, data.purchases, data.referrals, data.flows, data.as_of,
            top_k=LIST_LIMIT, draw_map=draw_map, on_stage=on_stage, reviews=reviews,
            merchant_names={m.id: m.name for m in data.merchants},
        )
        step("scopes")
        payloads, blobs = await asyncio.to_thread(build_payloads, data, analysis)
        blobs |= {name: blob for name, blob in (("map.png", analysis.map_png), ("map.svg", analysis.map_svg))
                  if blob is not None}
        summary = {
            "members": len(data.members), "merchants": len(data.merchants), "referrals": len(data.referrals),
            "purchases": len(data.purchases), "fraud_alerts": len(analysis.alerts),
            "communities": len(analysis.communities.groups),
            "timings_s": {"load": round(load_s, 3), **{k: round(v, 3) for k, v in analysis.timings_s.items()}},
        }
        png, svg = analysis.map_png, analysis.map_svg
        del data, analysis  # the columns and graphs (a GB at a million members) are not needed to store
        step("store")
        # The alerts the previous run did not have go to the webhooks outbox with the run (network.alerts).
        changes = []
        if db.hooks is not None:
            previous = await store.view(None)
            changes = await alert_changes(db, payloads[NETWORK_SCOPE]["fraud_alerts"],
                                          seen_keys(previous.payload.get("fraud_alerts", []) if previous else []),
                                          now or utcnow())
        stored = await store.finish_run(run_id, payloads, blobs, summary, changes)
        report("done", total, total)
        return RunReport(run_id, stored.started_at, stored.computed_at, summary, png, svg)
    except BaseException as exc:
        await asyncio.shield(store.fail_run(run_id, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        if own_store:
            await store.aclose()


def build_payloads(data: NetworkData, analysis: NetworkAnalysis) -> tuple[dict[str, dict[str, Any]], dict[str, bytes]]:
    """Cut one run's results into the stored scopes (see the module docstring): the JSON payloads, and
    the binary ones (each merchant's RFM columns)."""
    segments = analysis.segments
    rfm = segments.rfm
    assert rfm.merchant_ids is not None
    referred = analysis.referral_graph
    referral_counts = referred.out_degree()
    reach = {r.member_id: r.reach for r in analysis.top_referrers}

    # Group the (member, merchant) rows by merchant once, not once per merchant.
    order = np.argsort(rfm.merchant_ids, kind="stable")
    sorted_merchants = rfm.merchant_ids[order]

    def rows_of(merchant_id: int) -> Any:
        lo, hi = np.searchsorted(sorted_merchants, [merchant_id, merchant_id + 1])
        return order[lo:hi]

    # A merchant's members: whoever earned or redeemed there, or was enrolled there.
    p_order = argsort_ints(data.purchases.merchant_ids)
    p_merchants = data.purchases.merchant_ids[p_order]
    p_members = data.purchases.member_ids[p_order]

    # Members by enrolling merchant, grouped once too (-1, enrolled by none, sorts first).
    e_order = argsort_ints(data.enrolled_by + 1)
    e_merchants = data.enrolled_by[e_order]
    e_members = data.members.ids[e_order]

    def members_of(merchant_id: int) -> Any:
        lo, hi = np.searchsorted(p_merchants, [merchant_id, merchant_id + 1])
        e_lo, e_hi = np.searchsorted(e_merchants, [merchant_id, merchant_id + 1])
        return unique_sorted(np.concatenate([p_members[lo:hi], e_members[e_lo:e_hi]]))

    community_of = {m: i for i, group in enumerate(analysis.communities.groups) for m in group}
    rules = {t: segments.rule(t) for t in LoyaltyType}

    def segment_rows(counts: Any) -> list[dict[str, Any]]:
        return [{"segment": t.name, "members": int(counts[t]), "rule": rules[t], "action": SUGGESTED_ACTIONS[t]}
                for t in LoyaltyType]

    def referrers_among(member_ids: Any) -> list[dict[str, Any]]:
        if len(referred.ids) == 0:
            return []
        # referred.ids is sorted: a binary search, not np.isin (which sorts it again per merchant).
        nodes = np.minimum(np.searchsorted(referred.ids, member_ids), len(referred.ids) - 1)
        nodes = nodes[referred.ids[nodes] == member_ids]
        nodes = nodes[referral_counts[nodes] > 0]
        best = nodes[np.lexsort((referred.ids[nodes], -analysis.pagerank[nodes]))][:LIST_LIMIT]
        return [{"member_id": int(referred.ids[i]), "influence": float(analysis.pagerank[i]),
                 "referrals": int(referral_counts[i]), "reach": reach.get(int(referred.ids[i]))} for i in best]

    payloads: dict[str, dict[str, Any]] = {}
    blobs: dict[str, bytes] = {}
    for merchant in data.merchants:
        rows = rows_of(merchant.id)
        types = segments.types[rows]
        recency = rfm.recency_s[rows]
        wanted = (types == LoyaltyType.HIGH_RISK) | ((types == LoyaltyType.ACCESSIBLE) &
                                                     (recency > segments.win_back_s))
        back = rows[wanted]
        back = back[np.lexsort((rfm.member_ids[back], -rfm.monetary_minor[back]))][:LIST_LIMIT]
        own = members_of(merchant.id)
        community = community_of.get(merchant.id)
        payloads[merchant_scope(merchant.id)] = {
            "merchant_id": merchant.id,
            "members": len(own),
            "segments": segment_rows(np.bincount(types, minlength=len(LoyaltyType))),
            "recommendations": [_recommendation(merchant.id, r) for r in analysis.recommendations.get(merchant.id, [])],
            "win_back": [{"member_id": int(rfm.member_ids[i]), "segment": LoyaltyType(int(segments.types[i])).name,
                          "recency_s": int(rfm.recency_s[i]), "monetary_minor": int(rfm.monetary_minor[i])}
                         for i in back],
            "top_referrers": referrers_among(own),
            "communities": [] if community is None else [_community(community, analysis)],
        }
        by_member = rows[np.argsort(rfm.member_ids[rows], kind="stable")]
        blobs[rfm_scope(merchant.id)] = rfm_blob({
            "member_ids": rfm.member_ids[by_member], "r": rfm.r[by_member], "f": rfm.f[by_member],
            "m": rfm.m[by_member], "recency_s": rfm.recency_s[by_member], "frequency": rfm.frequency[by_member],
            "monetary_minor": rfm.monetary_minor[by_member], "type": segments.types[by_member],
        })

    pairs = sorted((_recommendation(m, r) for m, recs in analysis.recommendations.items() for r in recs),
                   key=lambda p: (-p["score"], p["merchant_id"], p["partner_id"]))
    payloads[NETWORK_SCOPE] = {
        "members": len(data.members),
        "segments": segment_rows(np.bincount(segments.types, minlength=len(LoyaltyType))),
        "recommendations": pairs[:LIST_LIMIT],
        "win_back": [],
        "top_referrers": [{"member_id": r.member_id, "influence": r.pagerank, "referrals": r.referrals,
                           "reach": r.reach} for r in analysis.top_referrers],
        "communities": [_community(i, analysis) for i in range(len(analysis.communities.groups))],
        "modularity": analysis.communities.modularity,
        "map": analysis.map_layout,  # the admin page's interactive map (coalition.web.admin)
        "fraud_alerts": [{"kind": str(a.kind), "score": a.score, "member_ids": list(a.member_ids),
                          "merchant_ids": list(a.merchant_ids), "explanation": a.explanation}
                         for a in sorted(analysis.alerts, key=lambda a: -a.score)],
    }
    return payloads, blobs


def _recommendation(merchant_id: int, r: Any) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "partner_id": r.merchant_id, "score": r.score,
            "shared_members": r.shared_members, "lift": r.lift, "expected_shared": r.expected_shared,
            "shared_partners": r.shared_partners, "reason": r.reason}


def _community(index: int, analysis: NetworkAnalysis) -> dict[str, Any]:
    return {"id": index, "merchant_ids": list(analysis.communities.groups[index])}
