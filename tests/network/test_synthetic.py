from __future__ import annotations

import numpy as np
import pytest

from coalition.network.fraud import FraudAlert, FraudKind
from coalition.network.graphs import EARN, REDEEM, purchase_graph
from coalition.network.loyalty import LoyaltyType
from coalition.network.segments import loyalty_segments
from coalition.network.synthetic import detection_scores, generate


def test_generation_is_seeded_and_sized() -> None:
    first = generate(n_members=5000, n_merchants=100, n_purchases=50_000, seed=3)
    second = generate(n_members=5000, n_merchants=100, n_purchases=50_000, seed=3)

    assert first.sizes["members"] == 5000
    assert first.sizes["purchases"] == len(first.purchases) == 50_000
    assert np.array_equal(first.purchases.member_ids, second.purchases.member_ids)
    assert np.array_equal(first.referrals.referrer_ids, second.referrals.referrer_ids)
    assert set(np.unique(first.purchases.kinds).tolist()) == {EARN, REDEEM}
    assert first.purchases.member_ids.max() <= 5000 and first.purchases.merchant_ids.max() <= 100


def test_referrals_point_back_in_time_and_follow_a_heavy_tail() -> None:
    net = generate(n_members=20_000, n_merchants=100, n_purchases=10_000, seed=4)
    referrals = net.referrals
    enrolled = net.members.enrolled_at

    assert np.all(enrolled[referrals.referrer_ids - 1] <= referrals.enrolled_at)
    assert len(np.unique(referrals.referee_ids)) == len(referrals)  # one referrer per member
    per_referrer = np.bincount(referrals.referrer_ids)
    assert per_referrer.max() > 50 * np.median(per_referrer[per_referrer > 0])


def test_planted_truth_is_consistent_with_the_rows() -> None:
    net = generate(n_members=5000, n_merchants=100, n_purchases=30_000, seed=6)
    truth = net.truth

    referees = np.setdiff1d(truth.sybil_members, truth.sybil_referrers)
    assert not np.isin(referees, net.purchases.member_ids).any()
    straw = np.isin(net.purchases.member_ids, truth.collusion_members)
    pairs = set(zip(net.purchases.merchant_ids[straw].tolist(), strict=True))
    assert pairs == {(m,) for pair in truth.collusion_pairs for m in pair}
    for group in truth.shared_contact_groups:
        rows = np.array(group) - 1
        emails, phones = net.members.email_index[rows], net.members.phone_index[rows]
        assert len(set(emails.tolist())) == 1 or len(set(phones.tolist())) == 1


def test_detection_scores() -> None:
    net = generate(n_members=2000, n_merchants=50, n_purchases=10_000, seed=1, sybil_farms=1, farm_size=20)
    planted = net.truth.sybil_members
    half = tuple(int(m) for m in planted[: len(planted) // 2])
    alerts = [FraudAlert(FraudKind.SYBIL_FARM, 1.0, (*half, 1), (), "x")]

    scores = {s.kind: s for s in detection_scores(alerts, net.truth)}

    sybil = scores[FraudKind.SYBIL_FARM]
    assert sybil.true_positives == len(half)
    assert sybil.precision == pytest.approx(len(half) / (len(half) + 1))
    assert sybil.recall == pytest.approx(len(half) / len(planted))
    assert scores[FraudKind.SHARED_CONTACT].recall == 0.0


def test_launch_events_look_like_bursts_but_their_referees_buy() -> None:
    net = generate(n_members=5000, n_merchants=100, n_purchases=30_000, seed=8, launch_events=2, event_size=30)
    referrals = net.referrals

    bursty = []
    for referrer in np.unique(referrals.referrer_ids):
        times = referrals.enrolled_at[referrals.referrer_ids == referrer]
        if len(times) >= 30 and times.max() - times.min() < 3600:
            bursty.append(int(referrer))
    honest_bursts = [r for r in bursty if r not in set(net.truth.sybil_referrers.tolist())]

    assert len(honest_bursts) == 2
    for referrer in honest_bursts:
        friends = referrals.referee_ids[referrals.referrer_ids == referrer]
        assert np.isin(friends, net.purchases.member_ids).all()


def test_activity_is_placed_at_chosen_past_dates_and_churned_members_are_high_risk() -> None:
    as_of = 1_800_000_000
    net = generate(n_members=3000, n_merchants=40, n_purchases=30_000, seed=2, churn=0.3, churn_days=120,
                   as_of=as_of, days=400)

    assert net.as_of == as_of
    assert net.purchases.times.max() <= as_of and net.purchases.times.min() >= as_of - 400 * 86400
    churned = net.truth.churned_members
    assert len(churned) > 300
    rows = np.isin(net.purchases.member_ids, churned)
    assert net.purchases.times[rows].max() <= as_of - 120 * 86400
    segments = loyalty_segments(purchase_graph(net.purchases), as_of)
    of_churned = np.isin(segments.rfm.member_ids, churned)
    assert np.all(segments.types[of_churned] == LoyaltyType.HIGH_RISK)
    # and most of the others bought recently somewhere
    assert np.mean(segments.types[~of_churned] == LoyaltyType.HIGH_RISK) < 0.8
