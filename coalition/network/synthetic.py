"""A seeded synthetic coalition network, as the analyses' input columns plus the planted truth.

Honest behaviour: members enroll over two years; referrals follow preferential attachment
(a few members refer many, most refer none) and always point back in time; merchants sit
in neighbourhoods (``neighbourhood_size`` shops each) and members buy mostly at a favourite
shop and in their own neighbourhood, sometimes anywhere; about one row in twelve is a
redemption. Planted fraud, in member and merchant ids the truth lists:

- sybil farms: a referrer whose referees all enroll within an hour and never buy;
- collusion pairs (X, Y): straw members who earn only at X and redeem at Y minutes later;
- shared-contact groups: alias accounts of one person (an e-mail alias or a typo that
  canonicalises to the same fingerprint) enrolled within hours, at most one purchase each.

And honest look-alikes that must not be flagged: launch events, where a referrer brings
``event_size`` friends in under an hour who all go on to buy; households, honest members who
share one phone fingerprint and each buy.

Time: every row carries its effective time; ``days`` of activity end at ``as_of`` (default the
generator's fixed epoch + ``days``), so recency, churn and multi-day bursts can be placed.

Ten million purchases take a few seconds (numpy only, no Python loop over rows).
Ids: members 1..n_members, merchants 1..n_merchants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coalition.network.fraud import FraudAlert, FraudKind
from coalition.network.graphs import EARN, NETWORK, REDEEM, Flows, IntArray, Members, Purchases, Referrals

DAY_S = 86400
START = 1_735_689_600  # 2025-01-01T00:00:00Z


@dataclass(frozen=True, slots=True, eq=False)
class PlantedTruth:
    sybil_referrers: IntArray
    sybil_members: IntArray  # referrers and their referees, sorted
    collusion_pairs: tuple[tuple[int, int], ...]
    collusion_members: IntArray  # sorted
    shared_contact_groups: tuple[tuple[int, ...], ...]
    neighbourhoods: IntArray  # neighbourhood of merchant id i + 1
    churned_members: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # quiet for churn_days

    def members_of(self, kind: FraudKind) -> IntArray:
        if kind is FraudKind.SYBIL_FARM:
            return self.sybil_members
        if kind is FraudKind.MERCHANT_COLLUSION:
            return self.collusion_members
        if kind is FraudKind.REFERRAL_CYCLE:
            return np.zeros(0, dtype=np.int64)  # the generator's referrals always point back in time
        return np.array(sorted(m for group in self.shared_contact_groups for m in group), dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticNetwork:
    members: Members
    purchases: Purchases
    referrals: Referrals
    flows: Flows
    truth: PlantedTruth
    merchant_ids: IntArray
    as_of: int
    sizes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DetectionScore:
    kind: FraudKind
    planted: int
    flagged: int
    true_positives: int
    precision: float
    recall: float


def generate(n_members: int = 10_000, n_merchants: int = 200, n_purchases: int = 100_000,
             n_referrals: int | None = None, seed: int = 0, neighbourhood_size: int = 20, sybil_farms: int = 3,
             farm_size: int = 40, collusion_pairs: int = 2, collusion_members: int = 30,
             shared_groups: int = 10, launch_events: int = 2, event_size: int = 30,
             days: int = 365, households: int = 10, churn: float = 0.0, churn_days: int = 120,
             as_of: int | None = None) -> SyntheticNetwork:
    """Generate the network (see the module docstring). ``n_referrals`` defaults to 60% of members.

    Time: activity runs for ``days`` and ends at ``as_of`` (default ``START + days``); every row's
    time is its effective time. A share ``churn`` of the honest members who enrolled early
    stop buying ``churn_days`` before the end (``truth.churned_members``): they are who the
    HIGH_RISK segment must hold.
    """
    rng = np.random.default_rng(seed)
    start = START if as_of is None else as_of - days * DAY_S
    end = start + days * DAY_S
    n_neighbourhoods = max(1, n_merchants // neighbourhood_size)
    neighbourhoods = np.arange(n_merchants, dtype=np.int64) % n_neighbourhoods
    merchant_ids = np.arange(1, n_merchants + 1, dtype=np.int64)

    farm_sizes = rng.integers(farm_size * 3 // 4, farm_size * 5 // 4 + 1, size=sybil_farms)
    n_sybil = int(farm_sizes.sum()) + sybil_farms
    n_straw = collusion_pairs * collusion_members
    n_event = launch_events * (1 + event_size)
    group_sizes = rng.integers(3, 6, size=shared_groups)
    n_alias = int(group_sizes.sum())
    n_honest = n_members - n_sybil - n_straw - n_event - n_alias
    if n_honest < 100:
        raise ValueError(f"{n_members} members leave {n_honest} honest ones after planting fraud; use more")

    # --- honest members and referrals (member index i has id i + 1) ---
    enrolled = np.sort(rng.integers(start - 365 * DAY_S, end - DAY_S, size=n_honest)).astype(np.int64)
    roots = max(10, n_honest // 1000)
    wanted = n_members * 6 // 10 if n_referrals is None else n_referrals
    n_ref = max(0, min(wanted - int(farm_sizes.sum()), n_honest - roots))
    referees = np.sort(rng.choice(np.arange(roots, n_honest), size=n_ref, replace=False))
    fitness = rng.pareto(1.5, size=n_honest) + 0.05
    cumulative = np.cumsum(fitness)
    referrers = np.searchsorted(cumulative, rng.random(len(referees)) * cumulative[referees - 1], side="right")
    referrers = np.minimum(referrers, referees - 1)
    ref_from, ref_to, ref_at = [referrers + 1], [referees + 1], [enrolled[referees]]

    # --- honest purchases ---
    event_rows_each = 5
    n_planted_rows = n_straw * 2 + sybil_farms * 3 + n_event * event_rows_each + shared_groups
    n_rows = max(n_purchases - n_planted_rows, 0)
    activity = rng.lognormal(0.0, 1.0, size=n_honest)
    activity /= activity.sum()
    # Rows come grouped by member: a multinomial count per member, then a repeat (O(rows)).
    buyer = np.repeat(np.arange(n_honest), rng.multinomial(n_rows, activity))
    home = rng.integers(0, n_neighbourhoods, size=n_honest)
    per_hood = n_merchants // n_neighbourhoods
    popularity = 1.0 / np.arange(1, per_hood + 1) ** 0.8
    popularity_cdf = np.cumsum(popularity) / popularity.sum()
    favourite_slot = np.searchsorted(popularity_cdf, rng.random(n_honest))
    favourite = np.minimum(favourite_slot * n_neighbourhoods + home, n_merchants - 1)
    choice = rng.random(n_rows)
    slot = np.minimum(np.searchsorted(popularity_cdf, rng.random(n_rows)), per_hood - 1)
    local = np.minimum(slot * n_neighbourhoods + home[buyer], n_merchants - 1)
    anywhere = rng.integers(0, n_merchants, size=n_rows)
    merchant = np.where(choice < 0.4, favourite[buyer], np.where(choice < 0.88, local, anywhere))
    first = np.maximum(enrolled[buyer], start)
    quiet_from = end - churn_days * DAY_S
    churned = (rng.random(n_honest) < churn) & (np.maximum(enrolled, start) < quiet_from - 30 * DAY_S)
    last_possible = np.where(churned[buyer], quiet_from, end)
    times = first + (rng.random(n_rows) * (last_possible - first)).astype(np.int64)
    kinds = np.where(rng.random(n_rows) < 0.08, REDEEM, EARN).astype(np.int8)
    price = rng.lognormal(np.log(3000.0), 0.6, size=n_merchants)
    amounts = (rng.lognormal(0.0, 0.5, size=n_rows) * price[merchant]).astype(np.int64)
    amounts[kinds == REDEEM] = 0
    points = np.where(kinds == EARN, amounts // 100, rng.integers(50, 500, size=n_rows))
    rows_member, rows_merchant, rows_points = [buyer + 1], [merchant + 1], [points]
    rows_amount, rows_time, rows_kind = [amounts], [times], [kinds]
    flow_issuer = np.where(rng.random(n_rows) < 0.1, NETWORK, favourite[buyer] + 1)
    flows_from, flows_to, flows_points = [flow_issuer[kinds == REDEEM]], [merchant[kinds == REDEEM] + 1], \
        [points[kinds == REDEEM]]

    # --- sybil farms: ids after the honest ones ---
    next_id = n_honest + 1
    all_enrolled = [enrolled]
    sybil_referrers, sybil_members = [], []
    for size in farm_sizes.tolist():
        referrer = next_id
        burst_at = int(rng.integers(start, end - 2 * DAY_S))
        farm = np.arange(referrer + 1, referrer + 1 + size, dtype=np.int64)
        farm_enrolled = np.sort(burst_at + rng.integers(0, 40 * 60, size=size))
        all_enrolled += [np.array([burst_at - 30 * DAY_S]), farm_enrolled]
        ref_from.append(np.full(size, referrer, dtype=np.int64))
        ref_to.append(farm)
        ref_at.append(farm_enrolled)
        shop = int(rng.integers(0, n_merchants))
        rows_member.append(np.full(3, referrer))
        rows_merchant.append(np.full(3, shop + 1))
        rows_points.append(np.array([20, 30, 25]))
        rows_amount.append(np.array([2000, 3000, 2500]))
        rows_time.append(burst_at - rng.integers(DAY_S, 20 * DAY_S, size=3))
        rows_kind.append(np.zeros(3, dtype=np.int8))
        sybil_referrers.append(referrer)
        sybil_members += [referrer, *farm.tolist()]
        next_id = referrer + 1 + size

    # --- launch events (honest, must not be flagged): a referrer brings event_size friends
    # in under an hour, and they all go on to buy in the referrer's neighbourhood ---
    for _ in range(launch_events):
        referrer = next_id
        burst_at = int(rng.integers(start, end - 60 * DAY_S))
        friends = np.arange(referrer + 1, referrer + 1 + event_size, dtype=np.int64)
        friends_enrolled = np.sort(burst_at + rng.integers(0, 50 * 60, size=event_size))
        all_enrolled += [np.array([burst_at - 90 * DAY_S]), friends_enrolled]
        ref_from.append(np.full(event_size, referrer, dtype=np.int64))
        ref_to.append(friends)
        ref_at.append(friends_enrolled)
        hood = int(rng.integers(0, n_neighbourhoods))
        buyers = np.repeat(np.arange(referrer, referrer + 1 + event_size, dtype=np.int64), event_rows_each)
        shops = hood + n_neighbourhoods * rng.integers(0, per_hood, size=len(buyers))
        event_amounts = (rng.lognormal(0.0, 0.5, size=len(buyers)) * price[shops]).astype(np.int64)
        rows_member.append(buyers)
        rows_merchant.append(np.minimum(shops, n_merchants - 1) + 1)
        rows_points.append(event_amounts // 100)
        rows_amount.append(event_amounts)
        rows_time.append(burst_at + rng.integers(DAY_S, 50 * DAY_S, size=len(buyers)))
        rows_kind.append(np.zeros(len(buyers), dtype=np.int8))
        next_id = referrer + 1 + event_size

    # --- collusion pairs: straw members earn once at X, redeem at Y within two hours ---
    pairs: list[tuple[int, int]] = []
    straw_ids: list[int] = []
    for _ in range(collusion_pairs):
        x = int(rng.integers(0, n_merchants))
        y = int((x + 1 + rng.integers(0, n_merchants - 1)) % n_merchants)
        pairs.append((x + 1, y + 1))
        straw = np.arange(next_id, next_id + collusion_members, dtype=np.int64)
        joined = rng.integers(start, end - DAY_S, size=collusion_members)
        earned = joined + rng.integers(60, 3600, size=collusion_members)
        spent = earned + rng.integers(5 * 60, 2 * 3600, size=collusion_members)
        straw_points = rng.integers(300, 1000, size=collusion_members)
        all_enrolled.append(joined)
        rows_member += [straw, straw]
        rows_merchant += [np.full(collusion_members, x + 1), np.full(collusion_members, y + 1)]
        rows_points += [straw_points, straw_points]
        rows_amount += [straw_points * 100, np.zeros(collusion_members, dtype=np.int64)]
        rows_time += [earned, spent]
        rows_kind += [np.full(collusion_members, EARN, dtype=np.int8),
                      np.full(collusion_members, REDEEM, dtype=np.int8)]
        flows_from.append(np.full(collusion_members, x + 1))
        flows_to.append(np.full(collusion_members, y + 1))
        flows_points.append(straw_points)
        straw_ids += straw.tolist()
        next_id += collusion_members

    # --- alias accounts: one person's extra accounts, enrolled within hours, at most one purchase ---
    alias_ids = np.arange(next_id, next_id + n_alias, dtype=np.int64)
    groups: list[tuple[int, ...]] = []
    offset = 0
    for size in group_sizes.tolist():
        group = alias_ids[offset:offset + size]
        offset += size
        joined = int(rng.integers(start, end - DAY_S)) + np.sort(rng.integers(0, 6 * 3600, size=size))
        all_enrolled.append(joined)
        buys = group[:1]  # one of them makes one small purchase, the rest never buy
        shops = rng.integers(0, n_merchants, size=len(buys))
        rows_member.append(buys)
        rows_merchant.append(shops + 1)
        rows_points.append(np.full(len(buys), 10))
        rows_amount.append(np.full(len(buys), 1000))
        rows_time.append(joined[:len(buys)] + 3600)
        rows_kind.append(np.zeros(len(buys), dtype=np.int8))
        groups.append(tuple(int(m) for m in group))
    next_id += n_alias

    member_ids = np.arange(1, n_members + 1, dtype=np.int64)
    # --- contact fingerprints: unique per honest member, shared by alias groups and households ---
    email = np.where(rng.random(n_members) < 0.7, np.char.add("e", member_ids.astype(str)), "")
    phone = np.where(rng.random(n_members) < 0.5, np.char.add("p", member_ids.astype(str)), "")
    email, phone = email.astype("<U24"), phone.astype("<U24")
    for g, group_ids in enumerate(groups):
        chosen_ids = np.array(group_ids) - 1
        if g % 2 == 0:
            email[chosen_ids] = f"shared-e{g}"
        else:
            phone[chosen_ids] = f"shared-p{g}"
    home_sizes = rng.integers(2, 5, size=households)
    homes = rng.choice(n_honest, size=int(home_sizes.sum()), replace=False)
    offset = 0
    for h, size in enumerate(home_sizes.tolist()):
        phone[homes[offset:offset + size]] = f"household-p{h}"
        offset += size

    # Rows in time order, as a ledger holds them (members interleaved).
    row_times = np.concatenate(rows_time).astype(np.int64)
    in_time = np.argsort(row_times, kind="stable")

    def column(parts: list[IntArray] | list[NDArray[np.int8]], dtype: type[np.integer[Any]]) -> NDArray[Any]:
        return np.concatenate(parts).astype(dtype)[in_time]

    purchases = Purchases(column(rows_member, np.int64), column(rows_merchant, np.int64),
                          column(rows_points, np.int64), column(rows_amount, np.int64), row_times[in_time],
                          column(rows_kind, np.int8))
    referrals = Referrals(np.concatenate(ref_from).astype(np.int64), np.concatenate(ref_to).astype(np.int64),
                          np.concatenate(ref_at).astype(np.int64))
    flows = Flows(np.concatenate(flows_from).astype(np.int64), np.concatenate(flows_to).astype(np.int64),
                  np.concatenate(flows_points).astype(np.int64))
    members = Members(member_ids, np.concatenate(all_enrolled).astype(np.int64), email, phone)
    truth = PlantedTruth(np.array(sybil_referrers, dtype=np.int64), np.array(sorted(sybil_members), dtype=np.int64),
                         tuple(pairs), np.array(sorted(straw_ids), dtype=np.int64), tuple(groups), neighbourhoods,
                         np.flatnonzero(churned).astype(np.int64) + 1)
    sizes = {"members": n_members, "merchants": n_merchants, "purchases": len(purchases),
             "referrals": len(referrals), "flows": len(flows)}
    return SyntheticNetwork(members, purchases, referrals, flows, truth, merchant_ids, end, sizes)


def detection_scores(alerts: list[FraudAlert], truth: PlantedTruth) -> list[DetectionScore]:
    """Member-level precision and recall of the alerts of each kind against the planted truth."""
    scores = []
    for kind in FraudKind:
        flagged = np.unique(np.array([m for a in alerts if a.kind is kind for m in a.member_ids], dtype=np.int64))
        planted = truth.members_of(kind)
        hits = len(np.intersect1d(flagged, planted))
        scores.append(DetectionScore(kind, len(planted), len(flagged), hits,
                                     hits / len(flagged) if len(flagged) else 1.0,
                                     hits / len(planted) if len(planted) else 1.0))
    return scores
