"""The pure pricing of a settlement window: hand-written rows in, lines and figures out (no database).

Every expected figure is worked out by hand in the comment beside it, from the table in
:mod:`coalition.settlement.pricing`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coalition.settlement.models import FundingModel, LineKind, ProgramCost, SettlementPeriod
from coalition.settlement.policy import Policy
from coalition.settlement.pricing import Line, WindowRows, price, price_window, round_half_even

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def policy(model: FundingModel = FundingModel.ISSUANCE, value: int = 10, rate: str = "0.9", share: str = "0.5",
           effective_from: dt.datetime = T0, policy_id: int | None = 1) -> Policy:
    return Policy(point_value_minor=value, funding_model=model, reimbursement_rate=Decimal(rate),
                  breakage_share=Decimal(share), period=SettlementPeriod.MONTHLY, timezone="UTC",
                  effective_from=effective_from, id=policy_id)


def rows(versions: list[Policy], allocations: list[tuple[object, ...]] | None = None,
         restores: list[tuple[int | None, int | None, int, int]] | None = None,
         issued: list[tuple[int, int | None, int | None, int]] | None = None, after: int = 100, through: int = 200,
         originals: dict[int, tuple[int, dt.datetime]] | None = None,
         batches: list[tuple[int, int]] | None = None) -> WindowRows:
    return WindowRows(after, through, versions, allocations or [], restores or [], issued or [], originals or {},
                      batches or [])


def money_of(line: Line) -> tuple[LineKind, int | None, int | None, int, int, int]:
    return line.kind, line.issuer, line.redeemer, line.points, line.issuer_minor, line.redeemer_minor


def test_an_issuance_window_charges_issuing_reimburses_honoring_and_returns_breakage() -> None:
    # Given merchant 1 issued 500 points, 100 of them honored by 2 and 30 expired (V = 10, r = 0.9, b = 0.5)
    window = rows([policy()], allocations=[(1, 2, 100), (1, None, 30)], issued=[(0, 1, None, -500)])

    # When the window is priced
    figures = price_window(window)

    # Then: ISSUED 1: -500*10; HONORED 1->2: +100*10*0.9; EXPIRED 1: +30*10*0.5
    assert [money_of(line) for line in figures.lines] == [
        (LineKind.ISSUED, 1, None, 500, -5000, 0),
        (LineKind.HONORED, 1, 2, 100, 0, 900),
        (LineKind.EXPIRED, 1, None, 30, 150, 0),
    ]
    one, two = figures.merchants[1], figures.merchants[2]
    assert (one.points_issued, one.points_expired, one.charges_minor, one.breakage_minor) == (500, 30, 5000, 150)
    assert (two.points_honored, two.reimbursements_minor) == (100, 900)
    assert (one.net_minor, two.net_minor) == (-4850, 900)
    assert figures.netting.positions == {1: -4850, 2: 900}
    assert figures.netting.network_income_minor == 3950  # -(-4850 + 900)
    assert figures.residue_minor == 0
    assert (figures.after_entry_id, figures.through_entry_id) == (100, 200)
    assert figures.policies == [window.versions[0]]
    assert figures.matrix == [(1, 2, 100, 900, 0)]


def test_each_line_is_rounded_half_even_once_and_the_residue_goes_to_the_network() -> None:
    # V = 1, r = 0.5: 3 points -> 1.5 -> 2 (to even), 5 points -> 2.5 -> 2 (to even), 7 -> 3.5 -> 4
    window = rows([policy(value=1, rate="0.5")], allocations=[(1, 2, 3), (1, 3, 5), (1, 4, 7)])

    figures = price_window(window)

    assert [line.redeemer_minor for line in figures.lines] == [2, 2, 4]
    assert [line.exact_minor for line in figures.lines] == [Decimal("1.5"), Decimal("2.5"), Decimal("3.5")]
    # exact 7.5, rounded 8: the network made -0.5 on rounding, written as the residue
    assert figures.residue_minor == Decimal("-0.5")
    assert sum(line.residue for line in figures.lines) == figures.residue_minor
    # positions plus network income are exactly zero
    assert sum(figures.netting.positions.values()) + figures.netting.network_income_minor == 0


def test_a_redemption_window_charges_the_issuer_only_when_another_merchant_honors() -> None:
    # REDEMPTION, V = 10, r = 0.9: 1 -> 2 charges 1 100*10 and pays 2 900; 1 -> 1 moves nothing;
    # network-issued points (issuer None) honored by 2: the network is charged, holds no position.
    window = rows([policy(FundingModel.REDEMPTION)], allocations=[(1, 2, 100), (1, 1, 40), (None, 2, 10), (1, None, 5)],
                  issued=[(0, 1, None, -300)])

    figures = price_window(window)

    assert [money_of(line) for line in figures.lines] == [
        (LineKind.ISSUED, 1, None, 300, 0, 0),  # issuing costs nothing under REDEMPTION
        (LineKind.HONORED, None, 2, 10, -100, 90),
        (LineKind.HONORED, 1, 1, 40, 0, 0),
        (LineKind.HONORED, 1, 2, 100, -1000, 900),
        (LineKind.EXPIRED, 1, None, 5, 0, 0),  # no breakage under REDEMPTION
    ]
    assert figures.netting.positions == {1: -1000, 2: 990}
    assert figures.merchants[1].charges_minor == 1000
    assert figures.merchants[2].reimbursements_minor == 990
    assert figures.netting.network_income_minor == 10


def test_a_reversal_nets_into_its_original_in_the_window_and_adjusts_one_settled_before() -> None:
    # Restores: entry 150 reverses 120 (in the window) -> nets into the 1 -> 2 cell;
    # entry 160 reverses 90 (settled in batch 7) -> an ADJUSTMENT line naming batch 7.
    # Returns (earn reversals): entry 170 reverses 80 (batch 7 too: batch 8 is empty and shares its bound).
    window = rows([policy()], allocations=[(1, 2, 100)], restores=[(1, 2, 150, 20), (1, 2, 160, 30)],
                  issued=[(0, 1, None, -500), (0, 1, 170, 50)],
                  originals={150: (120, T0), 160: (90, T0), 170: (80, T0)},
                  batches=[(50, 6), (100, 7), (100, 8)])

    figures = price_window(window)

    assert [(*money_of(line), line.reversal_entry_id, line.original_entry_id, line.original_batch_id)
            for line in figures.lines] == [
        (LineKind.ISSUED, 1, None, 500, -5000, 0, None, None, None),
        (LineKind.HONORED, 1, 2, 80, 0, 720, None, None, None),  # 100 - 20, at 10 * 0.9
        (LineKind.ADJUSTMENT, 1, 2, -30, 0, -270, 160, 90, 7),  # priced like HONORED
        (LineKind.ADJUSTMENT, 1, None, -50, 500, 0, 170, 80, 7),  # priced like ISSUED
    ]
    one, two = figures.merchants[1], figures.merchants[2]
    assert (one.points_issued, one.points_reversed, one.charges_minor, one.adjustments_minor) == (500, 50, 5000, 500)
    assert (two.points_honored, two.points_reversed, two.reimbursements_minor, two.adjustments_minor) == (
        100, 50, 720, -270)


def test_each_transaction_is_priced_under_the_version_in_force_and_a_reversal_under_its_originals() -> None:
    # Version 0 (V = 10) until T1, version 1 (V = 20) after; the query tags each row with its index.
    t1 = T0 + dt.timedelta(days=10)
    versions = [policy(value=10), policy(value=20, effective_from=t1, policy_id=2)]
    window = rows(versions, allocations=[(1, 2, 0, 10), (1, 2, 1, 10)], restores=[(1, 2, 150, 4)],
                  originals={150: (120, T0 + dt.timedelta(days=1))})

    figures = price_window(window)

    # 10 - 4 points under version 0 (the reversed redemption was made then): 6*10*0.9; 10*20*0.9
    assert [(line.policy.id, line.points, line.redeemer_minor) for line in figures.lines] == [(1, 6, 54), (2, 10, 180)]
    assert [p.id for p in figures.policies] == [1, 2]


def test_an_empty_window_has_no_lines_and_no_money() -> None:
    figures = price_window(rows([policy()]))

    assert figures.lines == []
    assert figures.merchants == {}
    assert (figures.netting.gross_minor, figures.netting.net_minor, figures.residue_minor) == (0, 0, 0)


@given(points=st.integers(-10**9, 10**9), value=st.integers(1, 10**6),
       rate=st.decimals(min_value=0, max_value=1, places=6, allow_nan=False))
def test_the_integer_rounding_agrees_with_decimal_half_even(points: int, value: int, rate: Decimal) -> None:
    line = price(Line(LineKind.HONORED, policy(value=value, rate=str(rate)), 1, 2, points))

    assert line.exact_minor == Decimal(points * value) * rate
    assert line.redeemer_minor == round_half_even(line.exact_minor)


def test_program_costs_are_lines_of_their_own_attributed_to_their_funders() -> None:
    # Given 1 issued 500 points (60 of a campaign, 40 of its tier), the network 30 (a tier bonus, a quest bonus),
    # and 2 honored 200 of 1's points, 100 of them for a voucher
    window = WindowRows(100, 200, [policy()], [(1, 2, 200)], [], [(0, 1, None, -500), (0, None, None, -30)],
                        programs=[(0, 1, None, ProgramCost.CAMPAIGN, 60), (0, 1, None, ProgramCost.TIER, 40),
                                  (0, None, None, ProgramCost.TIER, 10), (0, None, None, ProgramCost.QUEST, 20),
                                  (0, 1, 2, ProgramCost.VOUCHER, 100)])
    figures = price_window(window)
    # Then each program is a line of its own, after its cell's plain points, charged to its funder
    assert [(line.program, *money_of(line)) for line in figures.lines] == [
        (ProgramCost.QUEST, LineKind.ISSUED, None, None, 20, -200, 0),
        (ProgramCost.TIER, LineKind.ISSUED, None, None, 10, -100, 0),
        (None, LineKind.ISSUED, 1, None, 400, -4000, 0),
        (ProgramCost.CAMPAIGN, LineKind.ISSUED, 1, None, 60, -600, 0),
        (ProgramCost.TIER, LineKind.ISSUED, 1, None, 40, -400, 0),
        (None, LineKind.HONORED, 1, 2, 100, 0, 900),
        (ProgramCost.VOUCHER, LineKind.HONORED, 1, 2, 100, 0, 900),
    ]
    # and every figure is what it is without the split
    plain = price_window(dataclasses.replace(window, programs=()))
    assert figures.merchants == plain.merchants and figures.netting == plain.netting


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.tuples(st.integers(0, 1), st.sampled_from([None, 1, 2, 3]), st.sampled_from([None, 1, 2, 3]),
                                st.integers(1, 5000), st.integers(0, 6000)), min_size=1, max_size=12),
       model=st.sampled_from(list(FundingModel)), rate=st.sampled_from(["0.85", "0.9", "1", "0.333"]))
def test_splitting_out_program_costs_moves_points_between_lines_never_money_between_parties(
        cells: list[tuple[int, int | None, int | None, int, int]], model: FundingModel, rate: str) -> None:
    versions = [policy(model, value=7, rate=rate), policy(model, value=5, rate=rate, policy_id=2,
                                                          effective_from=T0 + dt.timedelta(days=1))]
    allocations: list[tuple[object, ...]] = []
    issued: list[tuple[int, int | None, int | None, int]] = []
    programs: list[tuple[int, int | None, int | None, ProgramCost, int]] = []
    for v, issuer, redeemer, points, program_points in cells:
        if redeemer is None:
            issued.append((v, issuer, None, -points))
            for program in (ProgramCost.CAMPAIGN, ProgramCost.TIER, ProgramCost.QUEST):
                programs.append((v, issuer, None, program, program_points // 3))
        else:
            allocations.append((issuer, redeemer, v, points))
            programs.append((v, issuer, redeemer, ProgramCost.VOUCHER, program_points))
    window = WindowRows(100, 200, versions, allocations, [], issued, programs=programs)
    split, plain = price_window(window), price_window(dataclasses.replace(window, programs=()))
    # zero-sum, exactly: positions + network income = 0, the residue within half a minor unit per line
    assert sum(split.netting.positions.values()) + split.netting.network_income_minor == 0
    assert abs(split.residue_minor) <= Decimal(len(split.lines)) / 2
    # the same points per cell and kind; ISSUED money unchanged to the unit, HONORED within a unit per split line
    def totals(figures: Any) -> dict[tuple[Any, ...], int]:
        out: dict[tuple[Any, ...], int] = {}
        for line in figures.lines:
            key = (line.kind, line.policy.id, line.issuer, line.redeemer)
            out[key] = out.get(key, 0) + line.points
        return out

    assert totals(split) == totals(plain)
    split_lines = sum(1 for line in split.lines if line.program is not None)
    for merchant, figures in plain.merchants.items():
        other = split.merchants[merchant]
        assert (other.points_issued, other.points_honored, other.charges_minor) == (
            figures.points_issued, figures.points_honored, figures.charges_minor)
        assert abs(other.reimbursements_minor - figures.reimbursements_minor) <= split_lines
    # a program line never holds more than its cell, and never a negative amount
    assert all(line.points > 0 for line in split.lines if line.program is not None)
