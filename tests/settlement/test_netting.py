"""The netting math on plain lines: examples and hypothesis properties."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from coalition.settlement import netting
from coalition.settlement.netting import Transfer


@dataclass(frozen=True)
class L:
    issuer: int | None
    redeemer: int | None
    issuer_minor: int
    redeemer_minor: int


def test_a_redemption_line_is_a_direct_obligation_in_the_bilateral_view() -> None:
    # REDEMPTION: 1 (issuer) pays 100, 2 (redeemer) gets 90: 1 owes 2 90 directly, the network 10.
    result = netting.net([L(1, 2, -100, 90)])
    assert result.positions == {1: -100, 2: 90}
    assert result.network_income_minor == 10
    assert (result.gross_minor, result.net_minor) == (190, 190)
    assert result.netting_ratio == Decimal("0.0000")
    assert result.transfers == [Transfer(1, None, 100), Transfer(None, 2, 90)]
    assert result.bilateral == [Transfer(1, None, 10), Transfer(1, 2, 90)]


def test_opposite_flows_net_out() -> None:
    result = netting.net([L(1, 2, -100, 90), L(2, 1, -100, 90)])
    assert result.positions == {1: -10, 2: -10}
    assert result.net_minor == 20 and result.gross_minor == 380
    assert result.netting_ratio == Decimal("0.9474")  # 1 - 20/380
    assert result.bilateral == [Transfer(1, None, 10), Transfer(2, None, 10)]


def test_network_lines_have_no_position() -> None:
    result = netting.net([L(None, 3, -50, 45)])
    assert result.positions == {3: 45}
    assert result.network_income_minor == -45
    assert result.bilateral == [Transfer(None, 3, 45)]


def test_nothing_to_net() -> None:
    result = netting.net([])
    assert (result.gross_minor, result.net_minor, result.netting_ratio) == (0, 0, Decimal("0.0000"))
    assert result.transfers == [] == result.bilateral


parties = st.one_of(st.none(), st.integers(1, 6))
lines = st.lists(st.builds(L, parties, parties, st.integers(-10_000, 10_000), st.integers(-10_000, 10_000)),
                 max_size=40)


@given(lines)
def test_netting_never_increases_what_moves(ls: list[L]) -> None:
    result = netting.net(ls)
    assert result.net_minor <= result.gross_minor
    assert sum(result.positions.values()) + result.network_income_minor == 0
    assert len(result.transfers) == sum(1 for v in result.positions.values() if v)
    assert sum(t.amount_minor for t in result.transfers) == result.net_minor
    assert Decimal(0) <= result.netting_ratio <= Decimal(1)
    legs = sum((x.issuer is not None and x.issuer_minor != 0) + (x.redeemer is not None and x.redeemer_minor != 0)
               for x in ls)
    assert len(result.transfers) <= legs


@given(lines)
def test_the_bilateral_view_settles_the_same_positions(ls: list[L]) -> None:
    result = netting.net(ls)
    flows: dict[int | None, int] = {}
    for t in result.bilateral:
        assert t.amount_minor > 0 and t.payer != t.payee
        flows[t.payer] = flows.get(t.payer, 0) - t.amount_minor
        flows[t.payee] = flows.get(t.payee, 0) + t.amount_minor
    for merchant, position in result.positions.items():
        assert flows.get(merchant, 0) == position
    assert flows.get(None, 0) == result.network_income_minor
    pairs = [frozenset((t.payer, t.payee)) for t in result.bilateral]
    assert len(pairs) == len(set(pairs))  # one transfer per pair at most
