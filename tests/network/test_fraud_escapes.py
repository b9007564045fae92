"""The escapes of issue 19, each planted in a small honest network: every one must be found,
and the honest look-alikes next to it must not be flagged."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from coalition.network.fraud import NO_REVIEWS, FraudKind, Reviews, detect_fraud
from coalition.network.graphs import EARN, REDEEM, Members, Purchases, Referrals, referral_graph
from coalition.network.influence import pagerank

DAY = 86400
HOUR = 3600
T0 = 1_700_000_000


@dataclass
class Net:
    """A small honest network to plant fraud into: 400 members who buy 4-15 times over a year at
    20 shops, 10 % of them redeeming at another shop the same day, 40 referrers with referees
    spread over months."""

    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))
    enrolled: dict[int, int] = field(default_factory=dict)
    email: dict[int, str] = field(default_factory=dict)
    phone: dict[int, str] = field(default_factory=dict)
    rows: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # member, merchant, amount, t, kind
    refs: list[tuple[int, int, int]] = field(default_factory=list)
    next_id: int = 1

    def honest(self, n: int = 400) -> None:
        for _ in range(n):
            m = self.new(T0 + int(self.rng.integers(0, 200)) * DAY)
            for _ in range(int(self.rng.integers(4, 16))):
                t = self.enrolled[m] + int(self.rng.integers(1, 160)) * DAY
                shop = int(self.rng.integers(1, 21))
                self.rows.append((m, shop, int(self.rng.integers(1500, 9000)), t, EARN))
                if self.rng.random() < 0.1:
                    self.rows.append((m, 1 + shop % 20, 0, t + 2 * HOUR, REDEEM))
        ids = list(self.enrolled)
        for referrer in ids[:40]:
            for _ in range(int(self.rng.integers(1, 8))):
                referee = ids[int(self.rng.integers(40, len(ids)))]
                if all(r[1] != referee for r in self.refs):
                    self.refs.append((referrer, referee, self.enrolled[referee]))

    def new(self, at: int) -> int:
        m = self.next_id
        self.next_id += 1
        self.enrolled[m] = at
        return m

    def farm(self, size: int, start: int, spread_days: int = 0, one_purchase: float = 0.0,
             amount: int = 1000) -> list[int]:
        referrer = self.new(start - 40 * DAY)
        self.rows += [(referrer, 3, 4000, start - 20 * DAY, EARN), (referrer, 4, 3000, start - 10 * DAY, EARN)]
        members = [referrer]
        for i in range(size):
            at = start + (i * spread_days * DAY) // max(size, 1) + int(self.rng.integers(0, 600))
            m = self.new(at)
            self.refs.append((referrer, m, at))
            if i < round(size * one_purchase):
                self.rows.append((m, int(self.rng.integers(1, 21)), amount, at + HOUR, EARN))
            members.append(m)
        return members

    def ring(self, shops: list[int], straws: int, start: int, decoy_shop: int | None = None) -> list[int]:
        members = []
        for i in range(straws):
            at = start + i * 3 * DAY
            m = self.new(at)
            earn_at, redeem_at = shops[i % len(shops)], shops[(i + 1) % len(shops)]
            self.rows += [(m, earn_at, 50_000, at + 600, EARN), (m, redeem_at, 0, at + 1800, REDEEM)]
            if decoy_shop is not None:
                self.rows.append((m, decoy_shop, 900, at + 3000, EARN))
            members.append(m)
        return members

    def viral(self, referees: int, start: int) -> int:
        """An honest referrer whose friends join over weeks and keep buying."""
        referrer = self.new(start - 30 * DAY)
        self.rows.append((referrer, 5, 4000, start - 5 * DAY, EARN))
        for i in range(referees):
            at = start + i * DAY // 2
            m = self.new(at)
            self.refs.append((referrer, m, at))
            for k in range(int(self.rng.integers(3, 8))):
                self.rows.append((m, int(self.rng.integers(1, 21)), int(self.rng.integers(1500, 9000)),
                                  at + (k + 1) * 9 * DAY, EARN))
        return referrer

    def data(self) -> tuple[Members, Purchases, Referrals]:
        ids = sorted(self.enrolled)
        members = Members.of(ids, [self.enrolled[m] for m in ids], [self.email.get(m) for m in ids],
                             [self.phone.get(m) for m in ids])
        member, merchant, amount, t, kind = zip(*self.rows, strict=True)
        purchases = Purchases.of(member, merchant, [a // 100 or 100 for a in amount], amount, t, kind)
        referrer, referee, at = zip(*self.refs, strict=True)
        return members, purchases, Referrals.of(referrer, referee, at)


def flagged(net: Net, kind: FraudKind | None = None, reviews: Reviews = NO_REVIEWS) -> set[int]:
    members, purchases, referrals = net.data()
    report = detect_fraud(members, purchases, referrals, reviews=reviews)
    return {m for a in report.alerts if kind is None or a.kind is kind for m in a.member_ids}


def honest_net() -> Net:
    net = Net()
    net.honest()
    return net


def test_the_honest_background_is_not_flagged() -> None:
    assert flagged(honest_net()) == set()


def test_a_farm_of_five_is_found() -> None:
    net = honest_net()
    farm = net.farm(5, T0 + 100 * DAY)

    assert flagged(net, FraudKind.SYBIL_FARM) == set(farm)


def test_sybils_making_one_minimal_purchase_each_are_found() -> None:
    net = honest_net()
    farm = net.farm(20, T0 + 100 * DAY, one_purchase=1.0, amount=1000)

    assert flagged(net, FraudKind.SYBIL_FARM) == set(farm)


def test_a_farm_spread_over_days_by_the_daily_referral_limit_is_found() -> None:
    net = honest_net()
    farm = net.farm(30, T0 + 100 * DAY, spread_days=6, one_purchase=0.5)

    assert flagged(net, FraudKind.SYBIL_FARM) == set(farm)


def test_a_ring_of_eight_straws_across_two_merchants_is_found() -> None:
    net = honest_net()
    ring = net.ring([30, 31], 8, T0 + 50 * DAY)

    assert flagged(net, FraudKind.MERCHANT_COLLUSION) == set(ring)


def test_a_decoy_purchase_at_a_third_shop_does_not_hide_a_straw() -> None:
    net = honest_net()
    ring = net.ring([30, 31], 10, T0 + 50 * DAY, decoy_shop=7)

    found = flagged(net, FraudKind.MERCHANT_COLLUSION)
    assert found == set(ring)


def test_a_ring_across_four_merchants_is_one_alert() -> None:
    net = honest_net()
    ring = net.ring([30, 31, 32, 33], 12, T0 + 50 * DAY)
    members, purchases, referrals = net.data()

    alerts = [a for a in detect_fraud(members, purchases, referrals).alerts if a.kind is FraudKind.MERCHANT_COLLUSION]

    assert len(alerts) == 1
    assert set(alerts[0].member_ids) == set(ring)
    assert set(alerts[0].merchant_ids) == {30, 31, 32, 33}
    assert "expected" in alerts[0].explanation


def test_a_small_ring_is_not_hidden_by_a_large_one() -> None:
    net = honest_net()
    big = net.ring([30, 31], 50, T0 + 10 * DAY)
    small = net.ring([35, 36], 6, T0 + 60 * DAY)

    assert flagged(net, FraudKind.MERCHANT_COLLUSION) == set(big) | set(small)


def test_a_forty_sybil_farms_referrer_ranks_below_a_viral_one() -> None:
    net = honest_net()
    farm = net.farm(40, T0 + 100 * DAY)
    viral = net.viral(12, T0 + 20 * DAY)
    members, purchases, referrals = net.data()
    report = detect_fraud(members, purchases, referrals)
    graph = referral_graph(referrals, members.ids)

    scores = pagerank(graph, trust=report.trust(graph.ids))
    index = {int(m): i for i, m in enumerate(graph.ids)}

    assert scores[index[viral]] > scores[index[farm[0]]]
    assert viral not in flagged(net)


def test_a_household_is_not_flagged_but_aliases_are() -> None:
    net = honest_net()
    household = [2, 3, 4]  # honest, active members who share one phone
    for m in household:
        net.phone[m] = "household"
    aliases = [net.new(T0 + 90 * DAY + i * HOUR) for i in range(4)]
    for m in aliases:
        net.email[m] = "alias"
    net.rows.append((aliases[0], 2, 1000, T0 + 91 * DAY, EARN))

    found = flagged(net, FraudKind.SHARED_CONTACT)

    assert found == set(aliases)


def test_every_alert_says_why_in_words_and_numbers() -> None:
    net = honest_net()
    net.farm(6, T0 + 100 * DAY)
    net.ring([30, 31], 8, T0 + 50 * DAY)
    members, purchases, referrals = net.data()

    for alert in detect_fraud(members, purchases, referrals).alerts:
        assert any(ch.isdigit() for ch in alert.explanation)
        assert "expected" in alert.explanation or "network" in alert.explanation
        assert 0.0 < alert.score <= 1.0


def test_a_dismissed_member_leaves_the_alerts_and_a_confirmed_one_is_known_fraud() -> None:
    net = honest_net()
    farm = net.farm(6, T0 + 100 * DAY)

    cleared = flagged(net, reviews=Reviews(dismissed_members=frozenset(farm[1:3])))
    assert cleared == set(farm) - set(farm[1:3])

    members, purchases, referrals = net.data()
    lone = net.new(T0 + 5 * DAY)  # confirmed by a reviewer, on no alert of its own
    members, purchases, referrals = net.data()
    report = detect_fraud(members, purchases, referrals, reviews=Reviews(confirmed_members=frozenset([lone])))
    assert report.member_score(lone) == 1.0
