from __future__ import annotations

from coalition.network import Flows, Members, Purchases, Referrals, analyze_all
from coalition.network.pipeline import STAGES
from coalition.network.synthetic import detection_scores, generate


def test_analyze_all_runs_every_stage_and_finds_the_planted_fraud() -> None:
    net = generate(n_members=6000, n_merchants=80, n_purchases=60_000, seed=9)
    seen: list[str] = []

    result = analyze_all(net.members, net.purchases, net.referrals, net.flows, net.as_of, top_k=5,
                         on_stage=lambda name, seconds: seen.append(name))

    assert seen == list(STAGES) == list(result.timings_s)
    assert len(result.top_referrers) == 5
    assert len(result.communities.groups) == 4  # 80 merchants in neighbourhoods of 20
    assert set(result.recommendations) == set(result.affinity.merchant_ids.tolist())
    assert all(s.precision == 1.0 and s.recall == 1.0 for s in detection_scores(result.alerts, net.truth))
    assert result.map_png is not None and result.map_png.startswith(b"\x89PNG")
    assert result.map_svg is not None and b"<svg" in result.map_svg[:2000]


def test_analyze_all_without_the_map() -> None:
    net = generate(n_members=2000, n_merchants=40, n_purchases=10_000, seed=1)

    result = analyze_all(net.members, net.purchases, net.referrals, net.flows, net.as_of, draw_map=False)

    assert result.map_png is None and result.map_svg is None
    assert list(result.timings_s) == list(STAGES[:-1])


def test_analyze_all_on_an_empty_network() -> None:
    result = analyze_all(Members.of([]), Purchases.of([], [], [], [], [], []), Referrals.of([], []),
                         Flows.of([], [], []), as_of=0)

    assert result.alerts == [] and result.top_referrers == [] and result.communities.groups == ()
    assert result.map_png is not None
