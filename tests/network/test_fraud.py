from __future__ import annotations

import numpy as np

from coalition.network.fraud import (
    FraudKind,
    collusion,
    detect_fraud,
    member_activity,
    referral_cycles,
    shared_contacts,
    sybil_farms,
)
from coalition.network.graphs import EARN, REDEEM, Members, Purchases, Referrals, referral_graph
from coalition.network.synthetic import detection_scores, generate

HOUR = 3600
DAY = 86400
NO_PURCHASES = Purchases.of([], [], [], [], [], [])


def test_planted_sybil_farm_is_flagged_and_honest_referrers_are_not() -> None:
    # Referrer 1: 30 referees in 20 minutes, none buys. Referrer 2: 30 referees over 30 days,
    # all buy. Referrer 3: 30 referees in one hour who all buy (a launch event).
    referrer, referee, enrolled = [], [], []
    for i in range(30):
        referrer += [1, 2, 3]
        referee += [100 + i, 200 + i, 300 + i]
        enrolled += [1_000_000 + i * 40, 1_000_000 + i * DAY, 1_000_000 + i * 100]
    buyers = sorted([1, 2, 3, *range(200, 230), *range(300, 330)])
    rows = [(m, k) for m in buyers for k in range(3)]  # each buyer buys three times
    purchases = Purchases.of([m for m, _ in rows], [1] * len(rows), [10] * len(rows), [1000] * len(rows),
                             [2_000_000 + k * DAY for _, k in rows], [EARN] * len(rows))
    members = Members.of([1, 2, 3, *referee], [0, 0, 0, *enrolled])

    alerts = sybil_farms(Referrals.of(referrer, referee, enrolled), member_activity(members, purchases))

    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind is FraudKind.SYBIL_FARM
    assert alert.member_ids == (1, *range(100, 130))
    assert alert.score == 1.0
    assert "referred 30 members: 30 never bought (0.4 expected) at the honest network's rates" in alert.explanation
    assert "30 enrolled within 3 days of another of them" in alert.explanation


def test_shared_contact_groups_join_email_and_phone_links() -> None:
    members = Members.of(
        [1, 2, 3, 4, 5, 6],
        email_index=["ea", "ea", "eb", None, "", "ec"],
        phone_index=[None, "pa", "pa", "pb", "", None],
    )

    alerts = shared_contacts(members, member_activity(members, NO_PURCHASES))

    assert [a.member_ids for a in alerts] == [(1, 2, 3)]
    assert alerts[0].score > 0.5
    assert "share 1 e-mail fingerprint and 1 phone fingerprint" in alerts[0].explanation
    assert "ea" not in alerts[0].explanation


def test_shared_contacts_accept_numpy_string_columns() -> None:
    members = Members(np.array([1, 2, 3]), np.zeros(3, dtype=np.int64), np.array(["x", "x", ""]),
                      np.array(["", "", ""]))

    assert [a.member_ids for a in shared_contacts(members, member_activity(members, NO_PURCHASES))] == [(1, 2)]


def collusion_purchases() -> Purchases:
    rows: list[tuple[int, int, int, int]] = []  # member, merchant, time, kind
    # 12 straw members: earn once at 10, redeem at 20 within minutes.
    for m in range(1, 13):
        rows += [(m, 10, m * DAY, EARN), (m, 20, m * DAY + 600, REDEEM)]
    # 1200 honest members: earn at three of nine shops, half of them redeem at any, over months.
    rng = np.random.default_rng(0)
    shops_all = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    for m in range(100, 1300):
        shops = rng.choice(shops_all, size=3, replace=False)
        for k, shop in enumerate(shops):
            rows.append((m, int(shop), k * 20 * DAY, EARN))
        if m % 2 == 0:
            rows.append((m, int(rng.choice(shops_all)), 70 * DAY, REDEEM))
    # An honest member with one earn and a quick redemption elsewhere (alone, not a pattern).
    rows += [(5000, 30, 0, EARN), (5000, 40, 100, REDEEM)]
    member, merchant, time, kind = zip(*rows, strict=True)
    n = len(rows)
    return Purchases.of(member, merchant, [100] * n, [1000] * n, time, kind)


def enrolled_at_first_activity(purchases: Purchases) -> Members:
    ids = np.unique(purchases.member_ids)
    first = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(first, np.searchsorted(ids, purchases.member_ids), purchases.times)
    return Members.of(ids, first)


def test_planted_collusion_pair_is_flagged_and_honest_members_are_not() -> None:
    purchases = collusion_purchases()

    members = enrolled_at_first_activity(purchases)

    alerts = collusion(purchases, member_activity(members, purchases), lag_s=DAY)

    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.merchant_ids == (10, 20)
    assert alert.member_ids == tuple(range(1, 13))
    assert 0.5 < alert.score <= 1.0
    assert "12 members earned at one of merchants 10, 20 and redeemed at another of them 10 minutes later" \
        in alert.explanation


def test_collusion_ignores_slow_redemptions() -> None:
    purchases = collusion_purchases()

    members = enrolled_at_first_activity(purchases)

    assert collusion(purchases, member_activity(members, purchases), lag_s=60) == []


def test_planted_fraud_in_a_synthetic_network_is_found_without_flagging_honest_members() -> None:
    net = generate(n_members=8000, n_merchants=100, n_purchases=80_000, seed=5)
    alerts = detect_fraud(net.members, net.purchases, net.referrals).alerts

    for score in detection_scores(alerts, net.truth):
        assert score.precision == 1.0, score
        assert score.recall == 1.0, score
    assert {a.merchant_ids for a in alerts if a.kind is FraudKind.MERCHANT_COLLUSION} == \
        {tuple(sorted(pair)) for pair in net.truth.collusion_pairs}


def test_referral_cycles_are_found_and_a_tree_is_clean() -> None:
    tree = Referrals.of([1, 1, 2, 5], [2, 3, 4, 6])
    looped = Referrals.of([1, 1, 2, 10, 11, 12, 12, 7], [2, 3, 4, 11, 12, 10, 13, 7])

    assert referral_cycles(referral_graph(tree)) == []
    alerts = referral_cycles(referral_graph(looped))

    assert [a.member_ids for a in alerts] == [(7,), (10, 11, 12)]
    assert all(a.kind is FraudKind.REFERRAL_CYCLE and a.score == 1.0 for a in alerts)
    assert "3 members referred each other in a loop" in alerts[1].explanation
