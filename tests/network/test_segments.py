from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from coalition.network.graphs import EARN, Purchases, purchase_graph
from coalition.network.segments import (
    DAY_S,
    SUGGESTED_ACTIONS,
    LoyaltyType,
    loyalty_segments,
    merchant_rfm,
    network_rfm,
    quintiles,
)

AS_OF = 400 * DAY_S


def test_quintiles_within_groups_and_ties() -> None:
    values = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5, 5, 5, 5, 5], dtype=np.int64)
    groups = np.array([0] * 10 + [1] * 5, dtype=np.int64)

    scores = quintiles(values, groups)

    assert scores[:10].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scores[10:].tolist() == [1, 1, 1, 1, 1]  # ties share the lower score


def rows_to_purchases(rows: list[tuple[int, int, int, int]]) -> Purchases:
    member, merchant, amount, day = zip(*rows, strict=True)
    n = len(rows)
    return Purchases.of(member, merchant, [a // 100 for a in amount], amount, [d * DAY_S for d in day], [EARN] * n)


def segment_rows() -> list[tuple[int, int, int, int]]:
    """At merchant 1: member 1 buys weekly, only here (truly loyal); member 2 buys here once
    recently and mostly elsewhere (accessible); member 3 buys here twice, only here
    (trapped); member 4 last bought here 200 days ago (high risk); member 5, accessible but
    away for 60 days (on the win-back list). Filler members 10..19 set the frequency scale."""
    rows = [(1, 1, 1000, 400 - 7 * k) for k in range(20)]
    rows += [(2, 1, 500, 395)] + [(2, 2, 5000, 390 - k) for k in range(5)]
    rows += [(3, 1, 800, 390), (3, 1, 800, 300)]
    rows += [(4, 1, 9000, 200), (4, 1, 9000, 150)]
    rows += [(5, 1, 700, 340)] + [(5, 2, 4000, 398 - k) for k in range(3)]
    for member in range(10, 20):
        rows += [(member, 1, 100, 380 - k) for k in range(member - 9)]
    return rows


def test_loyalty_types_follow_the_rule() -> None:
    graph = purchase_graph(rows_to_purchases(segment_rows()))

    segments = loyalty_segments(graph, AS_OF)

    at_one = {int(segments.rfm.member_ids[i]): LoyaltyType(int(segments.types[i])) for i in segments.rows_of(1)}
    assert at_one[1] is LoyaltyType.TRULY_LOYAL
    assert at_one[2] is LoyaltyType.ACCESSIBLE
    assert at_one[3] is LoyaltyType.TRAPPED
    assert at_one[4] is LoyaltyType.HIGH_RISK
    assert at_one[5] is LoyaltyType.ACCESSIBLE
    summary = {s.type: s for s in segments.summary(1)}
    assert summary[LoyaltyType.HIGH_RISK].members == 1
    assert summary[LoyaltyType.HIGH_RISK].rule == "no purchase here for more than 90 days"
    assert summary[LoyaltyType.TRULY_LOYAL].action == SUGGESTED_ACTIONS[LoyaltyType.TRULY_LOYAL]
    assert "50%" in summary[LoyaltyType.ACCESSIBLE].rule


def test_win_back_lists_lapsed_accessible_and_high_risk_members_biggest_spenders_first() -> None:
    segments = loyalty_segments(purchase_graph(rows_to_purchases(segment_rows())), AS_OF)

    win_back = segments.win_back(1)

    assert [member for member, _, _ in win_back] == [4, 5]
    assert win_back[0] == (4, 200 * DAY_S, 18000)


def test_network_and_merchant_rfm() -> None:
    graph = purchase_graph(rows_to_purchases(segment_rows()))

    network = network_rfm(graph, AS_OF)
    per_merchant = merchant_rfm(graph, AS_OF)

    row = int(np.searchsorted(network.member_ids, 1))
    assert (network.recency_s[row], network.frequency[row], network.monetary_minor[row]) == (0, 20, 20000)
    assert network.r[row] == 5 and network.f[row] == 5
    assert per_merchant.merchant_ids is not None
    pairs = list(zip(per_merchant.member_ids.tolist(), per_merchant.merchant_ids.tolist(), strict=True))
    assert (2, 2) in pairs and (2, 1) in pairs
    assert pairs == sorted(pairs, key=lambda pair: (pair[1], pair[0]))  # grouped by merchant
    assert per_merchant.r.min() >= 1 and per_merchant.r.max() <= 5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-50, 50)), min_size=1, max_size=200))
def test_quintiles_equal_the_rank_definition(rows: list[tuple[int, int]]) -> None:
    groups = np.array([g for g, _ in rows], dtype=np.int64)
    values = np.array([v for _, v in rows], dtype=np.int64)

    scores = quintiles(values, groups)

    for i, (group, value) in enumerate(rows):
        peers = values[groups == group]
        assert scores[i] == 1 + (int((peers < value).sum()) * 5) // len(peers)
