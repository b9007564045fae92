"""How well the analysis holds on networks shaped unlike the project's generator.

    .venv/bin/python bench/insight_quality.py [--seeds 20] [--seed-offset 0] [--members 3000] [--families all]

Each *family* draws its own network per seed from a generator written here, independently of
``coalition.network.synthetic``: merchants in neighbourhoods of uneven size plus hub merchants
everyone visits, honest members with a long-tailed number of purchases (15 % never buy, many buy once), honest
same-day redemptions at another shop, preferential-attachment referrals, viral referrers and
launch events, households sharing a phone. Then the family plants its fraud:

- ``farms``: 1-3 sybil farms of 3-60 referees, 0-60 % of them making one minimal purchase,
  enrolled within an hour or spread over up to 10 days;
- ``rings``: 1-3 collusion rings of 2-5 merchants with 5-50 straws, half with a decoy purchase
  at a third shop, one ring often on a naturally popular pair;
- ``cross``: farms and rings in a network where 15 % of honest redemptions are same-day at another shop;
- ``contacts``: alias and typo'd accounts of one person (2-6 accounts), next to households;
- ``mixed``: everything at once, every parameter drawn.

Per family it prints, over the seeds: member-level fraud precision and recall (mean and the
worst seed), the AUC of members' combined fraud scores, honest hard negatives flagged (viral
referrers and their referees, launch events, households, honest members of popular pairs), and
partner recommendations validated by hold-out: 20 % of same-neighbourhood merchant pairs have
every shared customer removed, and the scores rank them against cross-neighbourhood pairs (AUC)
and fill each merchant's top 5 (precision@5, against the best possible for its neighbourhood).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coalition.network.fraud import detect_fraud
from coalition.network.graphs import EARN, REDEEM, Members, Purchases, Referrals, affinity, purchase_graph
from coalition.network.recommendations import link_scores

DAY = 86400
HOUR = 3600
T0 = 1_750_000_000
FAMILIES = ("farms", "rings", "cross", "contacts", "mixed")


@dataclass
class World:
    rng: np.random.Generator
    n_merchants: int
    clusters: list[list[int]]
    hubs: list[int]
    cluster_of: dict[int, int]
    enrolled: list[int] = field(default_factory=list)  # index = member id - 1
    email: list[str | None] = field(default_factory=list)
    phone: list[str | None] = field(default_factory=list)
    rows: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # member, merchant, amount, t, kind
    refs: list[tuple[int, int, int]] = field(default_factory=list)
    fraud: set[int] = field(default_factory=set)
    hard: set[int] = field(default_factory=set)  # honest look-alikes

    def new(self, at: int, email: str | None = None, phone: str | None = None) -> int:
        self.enrolled.append(at)
        member = len(self.enrolled)
        self.email.append(email if email is not None else (f"e{member}" if self.rng.random() < 0.7 else None))
        self.phone.append(phone if phone is not None else (f"p{member}" if self.rng.random() < 0.5 else None))
        return member

    def shop_for(self, home: int) -> int:
        r = self.rng.random()
        if r < 0.72:
            shops = self.clusters[home]
            weights = 1.0 / np.arange(1, len(shops) + 1) ** 0.7
            return int(shops[self.rng.choice(len(shops), p=weights / weights.sum())])
        if r < 0.88 and self.hubs:
            return int(self.rng.choice(self.hubs))
        return int(self.rng.integers(1, self.n_merchants + 1))


def build_world(rng: np.random.Generator, members: int, cross: float) -> World:
    sizes = []
    while sum(sizes) < 56:
        sizes.append(int(rng.choice([3, 4, 5, 6, 8, 10, 12, 15])))
    hubs_n = int(rng.integers(1, 4))
    shop = 1
    clusters = []
    for size in sizes:
        clusters.append(list(range(shop, shop + size)))
        shop += size
    hubs = list(range(shop, shop + hubs_n))
    world = World(rng, shop + hubs_n - 1, clusters, hubs, {m: c for c, shops in enumerate(clusters) for m in shops})
    weights = np.array([len(c) for c in clusters], dtype=float) ** 1.2
    weights /= weights.sum()
    for _ in range(members):
        at = T0 + int(rng.integers(0, 500)) * DAY + int(rng.integers(0, DAY))
        member = world.new(at)
        home = int(rng.choice(len(clusters), p=weights))
        purchases = int(min(rng.geometric(0.12) + (rng.random() < 0.6) * rng.integers(0, 6), 60))
        if rng.random() < 0.15:  # honest members who enroll and never buy
            purchases = 0
        times = np.sort(at + rng.integers(HOUR, 300 * DAY, size=purchases))
        for t in times.tolist():
            where = world.shop_for(home)
            world.rows.append((member, where, int(rng.lognormal(np.log(3000), 0.6)), t, EARN))
            if rng.random() < 0.25:  # a redemption: often the same day at another shop
                if rng.random() < cross * 4:
                    other = world.shop_for(home)
                    world.rows.append((member, other, 0, t + int(rng.integers(600, 8 * HOUR)), REDEEM))
                else:
                    world.rows.append((member, world.shop_for(home), 0, t + int(rng.integers(2, 60)) * DAY, REDEEM))
    # honest referrals: preferential attachment, always to an earlier member
    order = np.argsort(world.enrolled)
    fitness = rng.pareto(1.5, size=members) + 0.05
    referred = rng.random(members) < 0.5
    for position, m in enumerate(order.tolist()):
        if position < 20 or not referred[m]:
            continue
        earlier = order[:position]
        referrer = int(earlier[rng.choice(len(earlier), p=fitness[earlier] / fitness[earlier].sum())]) + 1
        world.refs.append((referrer, m + 1, world.enrolled[m]))
    return world


def add_viral_and_events(world: World) -> None:
    rng = world.rng
    for _ in range(2):  # viral referrers: 30-80 friends over weeks, who buy
        start = T0 + int(rng.integers(0, 400)) * DAY
        referrer = world.new(start - 30 * DAY)
        home = int(rng.integers(0, len(world.clusters)))
        world.rows.append((referrer, world.shop_for(home), 4000, start - 5 * DAY, EARN))
        world.hard.add(referrer)
        for i in range(int(rng.integers(30, 81))):
            at = start + i * int(rng.integers(2 * HOUR, DAY))
            friend = world.new(at)
            world.refs.append((referrer, friend, at))
            world.hard.add(friend)
            for k in range(int(rng.integers(2, 8))):
                world.rows.append((friend, world.shop_for(home), int(rng.lognormal(np.log(3000), 0.6)),
                                   at + (k + 1) * int(rng.integers(2, 20)) * DAY, EARN))
    for _ in range(2):  # launch events: 20-40 friends in an hour, who buy
        start = T0 + int(rng.integers(0, 400)) * DAY
        referrer = world.new(start - 60 * DAY)
        world.hard.add(referrer)
        home = int(rng.integers(0, len(world.clusters)))
        for _ in range(int(rng.integers(20, 41))):
            at = start + int(rng.integers(0, HOUR))
            friend = world.new(at)
            world.refs.append((referrer, friend, at))
            world.hard.add(friend)
            for k in range(int(rng.integers(2, 6))):
                world.rows.append((friend, world.shop_for(home), 3000, at + (k + 1) * 7 * DAY, EARN))
    for h in range(int(rng.integers(5, 15))):  # households: 2-4 active members on one phone
        size = int(rng.integers(2, 5))
        at = T0 + int(rng.integers(0, 400)) * DAY
        home = int(rng.integers(0, len(world.clusters)))
        for _ in range(size):
            member = world.new(at + int(rng.integers(0, 3 * DAY)), phone=f"home{h}")
            world.hard.add(member)
            for k in range(int(rng.integers(2, 10))):
                world.rows.append((member, world.shop_for(home), 2500, at + (k + 1) * 11 * DAY, EARN))


def plant_farms(world: World, farms: int) -> None:
    rng = world.rng
    for _ in range(farms):
        size = int(rng.integers(3, 61))
        one_purchase = float(rng.uniform(0.0, 0.6))
        spread = int(rng.choice([0, 0, 2, 5, 10]))
        start = T0 + int(rng.integers(30, 450)) * DAY
        referrer = world.new(start - int(rng.integers(10, 60)) * DAY)
        world.rows.append((referrer, int(rng.integers(1, world.n_merchants + 1)), 3000, start - 3 * DAY, EARN))
        world.fraud.add(referrer)
        for i in range(size):
            at = start + (i * spread * DAY) // size + int(rng.integers(0, HOUR))
            sybil = world.new(at)
            world.refs.append((referrer, sybil, at))
            world.fraud.add(sybil)
            if rng.random() < one_purchase:
                world.rows.append((sybil, int(rng.integers(1, world.n_merchants + 1)), 1000,
                                   at + int(rng.integers(HOUR, 2 * DAY)), EARN))


def popular_pair(world: World) -> list[int]:
    """Two merchants of the biggest neighbourhood: honest members already link them a lot."""
    biggest = max(world.clusters, key=len)
    return [biggest[0], biggest[1]]


def plant_rings(world: World, rings: int) -> None:
    rng = world.rng
    for r in range(rings):
        k = int(rng.integers(2, 6))
        shops = popular_pair(world) if r == 0 and k == 2 else \
            [int(m) for m in rng.choice(np.arange(1, world.n_merchants + 1), size=k, replace=False)]
        straws = int(rng.integers(5, 51))
        decoys = rng.random() < 0.5
        start = T0 + int(rng.integers(30, 450)) * DAY
        for _ in range(straws):
            at = start + int(rng.integers(0, 60)) * DAY
            straw = world.new(at)
            world.fraud.add(straw)
            earn_at = shops[int(rng.integers(0, k))]
            redeem_at = shops[(shops.index(earn_at) + 1 + int(rng.integers(0, k - 1))) % k]
            earned = at + int(rng.integers(60, 6 * HOUR))
            world.rows.append((straw, earn_at, int(rng.integers(20_000, 80_000)), earned, EARN))
            world.rows.append((straw, redeem_at, 0, earned + int(rng.integers(300, 20 * HOUR)), REDEEM))
            if decoys:
                world.rows.append((straw, int(rng.integers(1, world.n_merchants + 1)), 800,
                                   earned + int(rng.integers(-HOUR, DAY)), EARN))


def plant_aliases(world: World, groups: int) -> None:
    rng = world.rng
    for g in range(groups):
        size = int(rng.integers(2, 7))
        start = T0 + int(rng.integers(0, 450)) * DAY
        how = rng.choice(["alias", "typo", "phone"])
        for i in range(size):
            at = start + int(rng.integers(0, 3 * DAY))
            member = world.new(at, email=f"person{g}" if how != "phone" else None,
                               phone=f"person{g}" if how == "phone" else None)
            world.fraud.add(member)
            if i == 0 or rng.random() < 0.3:
                world.rows.append((member, int(rng.integers(1, world.n_merchants + 1)), 1000, at + HOUR, EARN))


def network(family: str, seed: int, members: int) -> World:
    rng = np.random.default_rng(seed * 1000 + FAMILIES.index(family))
    cross = 0.15 if family == "cross" else float(rng.uniform(0.0, 0.15)) if family == "mixed" else 0.05
    world = build_world(rng, members, cross)
    add_viral_and_events(world)
    if family in ("farms", "cross", "mixed"):
        plant_farms(world, int(rng.integers(1, 4)))
    if family in ("rings", "cross", "mixed"):
        plant_rings(world, int(rng.integers(1, 4)))
    if family in ("contacts", "mixed"):
        plant_aliases(world, int(rng.integers(3, 10)))
    return world


def columns(world: World) -> tuple[Members, Purchases, Referrals]:
    n = len(world.enrolled)
    members = Members.of(np.arange(1, n + 1), world.enrolled, world.email, world.phone)
    m, shop, amount, t, kind = (np.array(c, dtype=np.int64) for c in zip(*world.rows, strict=True))
    purchases = Purchases.of(m, shop, np.maximum(amount // 100, 1), amount, t, kind)
    a, b, at = zip(*world.refs, strict=True)
    return members, purchases, Referrals.of(a, b, at)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:  # type: ignore[type-arg]
    """P(score of a positive > score of a negative), ties count half (Mann-Whitney)."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    values = np.concatenate([positive, negative])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2
    return float((ranks[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2)
                 / (len(positive) * len(negative)))


def fraud_quality(world: World) -> dict[str, float]:
    members, purchases, referrals = columns(world)
    report = detect_fraud(members, purchases, referrals)
    flagged = {m for a in report.alerts for m in a.member_ids}
    truth = world.fraud
    hits = len(flagged & truth)
    ids = np.arange(1, len(world.enrolled) + 1)
    scores = report.trust(ids)
    is_fraud = np.isin(ids, list(truth))
    return {
        "precision": hits / len(flagged) if flagged else 1.0,
        "recall": hits / len(truth) if truth else 1.0,
        "auc": auc(1 - scores[is_fraud], 1 - scores[~is_fraud]),
        "hard_flagged": float(len(flagged & world.hard)),
    }


def recommendation_quality(world: World) -> dict[str, float]:
    """Hold out 20 % of same-neighbourhood pairs (remove every customer they share), then rank."""
    rng = np.random.default_rng(len(world.enrolled))
    true_pairs = [(a, b) for c in world.clusters for i, a in enumerate(c) for b in c[i + 1:]]
    held = [true_pairs[i] for i in rng.choice(len(true_pairs), size=max(1, len(true_pairs) // 5), replace=False)]
    _, purchases, _ = columns(world)
    earns = purchases.select(purchases.kinds == EARN)
    drop = np.zeros(len(earns), dtype=bool)
    for a, b in held:
        at_a = set(earns.member_ids[earns.merchant_ids == a].tolist())
        both = np.flatnonzero((earns.merchant_ids == b) & np.isin(earns.member_ids, list(at_a)))
        drop[both] = True
    kept = earns.select(~drop)
    aff = affinity(purchase_graph(kept))
    scores = link_scores(aff)
    index = {int(m): i for i, m in enumerate(aff.merchant_ids)}
    old = _old_scores(aff)

    def score_of(matrix: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([matrix[index[a], index[b]] for a, b in pairs if a in index and b in index])

    clustered = [m for c in world.clusters for m in c]
    negatives = [(a, b) for i, a in enumerate(clustered) for b in clustered[i + 1:]
                 if world.cluster_of[a] != world.cluster_of[b]]
    precision = []
    for c in world.clusters:
        best = min(5, len(c) - 1)
        for m in c:
            if m not in index:
                continue
            row = scores.score[index[m]].copy()
            top = [int(aff.merchant_ids[i]) for i in np.argsort(-row)[:best]]
            precision.append(sum(world.cluster_of.get(t) == world.cluster_of[m] for t in top) / best)
    return {
        "rec_auc": auc(score_of(scores.score, held), score_of(scores.score, negatives)),
        "rec_auc_old": auc(score_of(old, held), score_of(old, negatives)),
        "p_at_5": float(np.mean(precision)),
    }


def _old_scores(aff: Any) -> np.ndarray:  # type: ignore[type-arg]
    """The previous ranking: (shared - expected) / sqrt(expected), pairs sharing >= 5 members only."""
    shared = aff.shared.toarray().astype(float)
    expected = np.outer(aff.members, aff.members) / max(aff.total_members, 1)
    z = (shared - expected) / np.sqrt(np.maximum(expected, 1e-12))
    return np.where(shared >= 5, z, -1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--families", default="all")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="first seed (fresh networks: check a change on seeds it was not looked at on)")
    args = parser.parse_args()
    families = FAMILIES if args.families == "all" else tuple(args.families.split(","))
    print(f"{args.seeds} seeds per family, {args.members} honest members each (+ planted), "
          f"~60 merchants in uneven neighbourhoods + 1-3 hubs")
    header = (f"{'family':<9} {'precision':>9} {'worst':>6} {'recall':>7} {'worst':>6} {'AUC':>6} {'worst':>6} "
              f"{'hard neg.':>9} {'rec AUC':>7} {'worst':>6} {'old':>5} {'P@5':>5} {'worst':>6} {'s/run':>6}")
    print(header)
    print("-" * len(header))
    for family in families:
        results: list[dict[str, float]] = []
        started = time.perf_counter()
        for seed in range(args.seed_offset, args.seed_offset + args.seeds):
            world = network(family, seed, args.members)
            results.append({**fraud_quality(world), **recommendation_quality(world), "seed": seed})
        per_run = (time.perf_counter() - started) / args.seeds

        def col(name: str, results: list[dict[str, float]] = results) -> np.ndarray:  # type: ignore[type-arg]
            return np.array([r[name] for r in results], dtype=float)

        worst = {k: int(results[int(np.nanargmin(col(k)))]["seed"])
                 for k in ("precision", "recall", "auc", "rec_auc", "p_at_5")}
        print(f"{family:<9} {col('precision').mean():>9.3f} {col('precision').min():>6.3f} "
              f"{col('recall').mean():>7.3f} {col('recall').min():>6.3f} {np.nanmean(col('auc')):>6.3f} "
              f"{np.nanmin(col('auc')):>6.3f} {int(col('hard_flagged').sum()):>9d} "
              f"{np.nanmean(col('rec_auc')):>7.3f} {np.nanmin(col('rec_auc')):>6.3f} "
              f"{np.nanmean(col('rec_auc_old')):>5.2f} {col('p_at_5').mean():>5.3f} {col('p_at_5').min():>6.3f} "
              f"{per_run:>6.2f}")
        print(f"{'':<9} worst seeds: " + ", ".join(f"{k} {v}" for k, v in worst.items()), flush=True)


if __name__ == "__main__":
    main()
