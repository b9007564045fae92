"""The full network analysis at scale: time per stage, total, peak RSS, fraud precision/recall.

    .venv/bin/python bench/network_analysis.py [--members 1000000] [--merchants 2000]
        [--purchases 10000000] [--referrals 1000000] [--seed 1] [--no-map] [--data /tmp/DIR]

A child process generates the synthetic network (``coalition.network.synthetic``) and saves
its columns as .npy files; this process loads them and runs ``analyze_all``, so the peak RSS
printed is that of loading the columns plus the analysis, as in ``coalition analyze``, not
that of the generator. Then PageRank is timed against igraph on the same referral graph
(``pip install igraph`` into the venv; skipped with a message when it is missing).
Target: total <= 120 s, peak RSS <= 4 GB on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from coalition.network import Flows, Members, Purchases, Referrals, analyze_all
from coalition.network.graphs import ReferralGraph
from coalition.network.influence import pagerank
from coalition.network.synthetic import PlantedTruth, detection_scores, generate

TARGET_TOTAL_S = 120.0
TARGET_RSS_GB = 4.0
COLUMNS = {
    "members": ("ids", "enrolled_at", "email_index", "phone_index"),
    "purchases": ("member_ids", "merchant_ids", "points", "amounts_minor", "times", "kinds"),
    "referrals": ("referrer_ids", "referee_ids", "enrolled_at"),
    "flows": ("issuer_ids", "redeemer_ids", "points"),
}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # Linux: KiB


def save(args: argparse.Namespace, folder: Path) -> None:
    started = time.perf_counter()
    net = generate(args.members, args.merchants, args.purchases, n_referrals=args.referrals, seed=args.seed,
                   sybil_farms=5, collusion_pairs=3, shared_groups=20)
    for table, columns in COLUMNS.items():
        for column in columns:
            np.save(folder / f"{table}.{column}.npy", getattr(getattr(net, table), column))
    truth = net.truth
    np.save(folder / "truth.sybil.npy", truth.sybil_members)
    np.save(folder / "truth.collusion.npy", truth.collusion_members)
    np.save(folder / "truth.pairs.npy", np.array(truth.collusion_pairs, dtype=np.int64))
    np.save(folder / "truth.groups.npy", np.array([g for group in truth.shared_contact_groups for g in (*group, 0)]))
    np.save(folder / "as_of.npy", np.array([net.as_of]))
    print(f"generated {net.sizes} in {time.perf_counter() - started:.1f} s "
          f"(generator peak RSS {peak_rss_gb():.2f} GB)", flush=True)


def load_truth(folder: Path) -> PlantedTruth:
    groups: list[tuple[int, ...]] = []
    current: list[int] = []
    for value in np.load(folder / "truth.groups.npy").tolist():  # groups separated by 0
        if value == 0:
            groups.append(tuple(current))
            current = []
        else:
            current.append(value)
    sybil = np.load(folder / "truth.sybil.npy")
    pairs = tuple((int(x), int(y)) for x, y in np.load(folder / "truth.pairs.npy").tolist())
    return PlantedTruth(sybil[:0], sybil, pairs, np.load(folder / "truth.collusion.npy"), tuple(groups), sybil[:0])


def load(folder: Path, table: str) -> list[np.ndarray]:  # type: ignore[type-arg]
    return [np.load(folder / f"{table}.{column}.npy") for column in COLUMNS[table]]


def igraph_ratio(graph: ReferralGraph) -> None:
    try:
        import igraph
    except ImportError:
        print("igraph comparison skipped: igraph is not installed (.venv/bin/pip install igraph)")
        return
    started = time.perf_counter()
    ours = pagerank(graph)
    ours_s = time.perf_counter() - started
    coo = graph.adjacency.tocoo()
    # Same direction as ours: credit flows referee -> referrer.
    g = igraph.Graph(n=len(graph.ids), edges=np.stack([coo.col, coo.row], axis=1).tolist(), directed=True)
    started = time.perf_counter()
    theirs = np.asarray(g.pagerank(damping=0.85, directed=True))
    igraph_s = time.perf_counter() - started
    difference = np.abs(ours - theirs).max()
    print(f"PageRank on {len(graph.ids):,} nodes / {graph.adjacency.nnz:,} edges: ours {ours_s:.3f} s, "
          f"igraph {igraph_s:.3f} s, ratio {ours_s / igraph_s:.2f}x; max |difference| {difference:.2e}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=2000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-map", action="store_true")
    parser.add_argument("--data", type=Path,
                        help="keep the generated columns in this folder and reuse them when present (same sizes)")
    parser.add_argument("--generate-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_to:
        save(args, args.generate_to)
        return 0

    with tempfile.TemporaryDirectory(prefix="coalition-bench-") as tmp:
        folder = args.data or Path(tmp)
        if not (folder / "as_of.npy").exists():
            folder.mkdir(parents=True, exist_ok=True)
            child = [sys.executable, __file__, "--generate-to", str(folder), "--members", str(args.members),
                     "--merchants", str(args.merchants), "--purchases", str(args.purchases), "--referrals",
                     str(args.referrals), "--seed", str(args.seed)]
            subprocess.run(child, check=True)

        started = time.perf_counter()
        members = Members(*load(folder, "members"))
        purchases = Purchases(*load(folder, "purchases"))
        referrals = Referrals(*load(folder, "referrals"))
        flows = Flows(*load(folder, "flows"))
        as_of = int(np.load(folder / "as_of.npy")[0])
        load_s = time.perf_counter() - started
        print(f"loaded columns in {load_s:.2f} s; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
              flush=True)

        # CPU seconds per stage next to the wall time: on a shared, loaded machine the CPU time
        # says more about the code than the wall time does.
        cpu_mark = [time.process_time()]

        def report(name: str, seconds: float) -> None:
            cpu, cpu_mark[0] = time.process_time() - cpu_mark[0], time.process_time()
            print(f"  {name:24s} {seconds:8.2f} s  cpu {cpu:7.2f} s   peak RSS {peak_rss_gb():5.2f} GB", flush=True)

        started = time.perf_counter()
        cpu_started = cpu_mark[0] = time.process_time()
        result = analyze_all(members, purchases, referrals, flows, as_of, draw_map=not args.no_map, on_stage=report)
        total_s = time.perf_counter() - started
        rss = peak_rss_gb()
        verdict = "OK" if total_s <= TARGET_TOTAL_S and rss <= TARGET_RSS_GB else "MISSED"
        print(f"TOTAL analyze_all {total_s:.2f} s, cpu {time.process_time() - cpu_started:.2f} s "
              f"(target <= {TARGET_TOTAL_S:.0f} s); peak RSS {rss:.2f} GB "
              f"(target <= {TARGET_RSS_GB:.0f} GB) -> {verdict}; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        top = result.top_referrers[0] if result.top_referrers else None
        print(f"communities: {len(result.communities.groups)}, modularity {result.communities.modularity:.3f}; "
              f"alerts: {len(result.alerts)}; top referrer: {top}")

        truth = load_truth(folder)
        for score in detection_scores(result.alerts, truth):
            print(f"  {score.kind:20s} planted {score.planted:5d} flagged {score.flagged:5d} "
                  f"precision {score.precision:.3f} recall {score.recall:.3f}")
        igraph_ratio(result.referral_graph)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
