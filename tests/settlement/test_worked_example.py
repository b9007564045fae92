"""A hand-worked example: three shops, both funding models, every figure checkable by hand.

Policy: point value 1 minor unit, reimbursement rate 0.90, breakage share 0.5.

Activity, batch 1 (one member; lots are spent oldest first):
  A issues 100, B issues 50.
  C honors 30   -> 30 of A's points          (line A->C 30)
  B honors 80   -> 70 of A's, 10 of B's      (lines A->B 70, B->B 10)
  A honors 5    -> 5 of B's                  (line B->A 5)

Reimbursement per line = points x 1 x 0.90, rounded half-even:
  A->C 30 -> 27.0 = 27;  A->B 70 -> 63.0 = 63;  B->B 10 -> 9.0 = 9;  B->A 5 -> 4.5 = 4 (residue 0.5)

ISSUANCE (issuer pays 1 per point issued; every honored point reimbursed):
  merchant  charged  reimbursed         position
  A         100      4                  -96
  B          50      63 + 9 = 72        +22
  C           0      27                 +27
  network income = 96 - 22 - 27 = 47  (= 150 charged - 103 paid)   residue 0.5
  gross = 100 + 50 + 27 + 63 + 9 + 4 = 253; net = 96 + 22 + 27 = 145; ratio 1 - 145/253 = 0.4269

REDEMPTION (issuer pays 1 per point honored by another shop; own points cost nothing):
  (B honoring its own 10 points: no charge, no reimbursement, a zero line)
  merchant  charged         reimbursed   position
  A         30 + 70 = 100   4            -96
  B         5               63           +58
  C         0               27           +27
  network income = 96 - 58 - 27 = 11  (= 105 charged - 94 paid)    residue 0.5
  gross = 30 + 27 + 70 + 63 + 5 + 4 = 199; net = 96 + 58 + 27 = 181; ratio 1 - 181/199 = 0.0905
  bilateral view: A->C 27, A->B 63 - 4 = 59, A->network 3 + 7 = 10, B->network 1: 97 in 4 transfers

Batch 2: C's redemption of 30 is reversed (after batch 1 closed), then a year passes and
the rest expires: A's 30 points (back in its lot), B's 35 (50 - 10 - 5).
  ADJUSTMENT line (points -30, pointing at C's redemption in batch 1):
    ISSUANCE: C -27.                REDEMPTION: C -27, A +30 (its charge refunded)
  EXPIRED (ISSUANCE only): A 30 x 0.5 = 15; B 35 x 0.5 = 17.5 -> 18 (half-even; residue -0.5)
  ISSUANCE:   A +15, B +18, C -27; network income -6
  REDEMPTION: A +30, B   0, C -27; network income -3   (B has no money line: it is not listed)
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from coalition.settlement.models import LineKind
from coalition.settlement.policy import set_policy

BATCH_1 = {
    "ISSUANCE": {"positions": {"A": -96, "B": 22, "C": 27}, "income": 47, "gross": 253, "net": 145,
                 "ratio": "0.4269", "residue": "0.5"},
    "REDEMPTION": {"positions": {"A": -96, "B": 58, "C": 27}, "income": 11, "gross": 199, "net": 181,
                   "ratio": "0.0905", "residue": "0.5", "bilateral": 97},
}
BATCH_2 = {
    "ISSUANCE": {"positions": {"A": 15, "B": 18, "C": -27}, "income": -6, "residue": "-0.5"},
    "REDEMPTION": {"positions": {"A": 30, "B": 0, "C": -27}, "income": -3, "residue": "0"},
}
MATRIX = {("A", "C"): (30, 27), ("A", "B"): (70, 63), ("B", "B"): (10, 9), ("B", "A"): (5, 4)}


@pytest.mark.parametrize("model", ["ISSUANCE", "REDEMPTION"])
async def test_three_shops_by_hand(shops: Any, model: str) -> None:
    s = shops
    await set_policy(s.db, s.settings, now=s.clock(), effective_from=s.clock() - dt.timedelta(days=1),
                     point_value_minor=1, funding_model=model, reimbursement_rate="0.90", breakage_share="0.5")
    names = {s.a.id: "A", s.b.id: "B", s.c.id: "C", None: None}
    await s.earn(100, s.a)
    s.clock.advance(minutes=1)
    await s.earn(50, s.b)
    at_c = await s.redeem(30, s.c)
    await s.redeem(80, s.b)
    await s.redeem(5, s.a)

    first = (await s.settle()).batch
    expected = BATCH_1[model]
    positions = {names[m]: v for m, v in (await s.positions(first.id)).items()}
    assert positions == expected["positions"]
    assert first.network_income_minor == expected["income"] == -sum(positions.values())
    assert (first.gross_minor, first.net_minor) == (expected["gross"], expected["net"])
    assert Decimal(first.residue_minor) == Decimal(expected["residue"])
    assert f'"nettingRatio":"{expected["ratio"]}"' in first.statement
    if "bilateral" in expected:
        assert first.bilateral_minor == expected["bilateral"]
    matrix = {(names[line.issuer_merchant_id], names[line.redeemer_merchant_id]): (line.points, line.redeemer_minor)
              for line in await s.lines(first.id) if line.kind == LineKind.HONORED}
    own = {("B", "B"): (10, 0)} if model == "REDEMPTION" else {}  # own points honored: nothing under REDEMPTION
    assert matrix == MATRIX | own

    await s.reverse(at_c)
    s.clock.advance(days=400)
    await s.ledger.expire_lots()
    second = (await s.settle()).batch
    expected = BATCH_2[model]
    positions = {names[m]: v for m, v in (await s.positions(second.id)).items()}
    assert {k: v for k, v in positions.items() if v or k != "B"} == {
        k: v for k, v in expected["positions"].items() if v or k != "B"}
    assert second.network_income_minor == expected["income"]
    assert Decimal(second.residue_minor) == Decimal(expected["residue"])
    adjustment = [line for line in await s.lines(second.id) if line.kind == LineKind.ADJUSTMENT]
    assert len(adjustment) == 1
    assert adjustment[0].original_entry_id == at_c.id and adjustment[0].original_batch_id == first.id
    assert adjustment[0].points == -30 and adjustment[0].redeemer_minor == -27
    assert second.previous_batch_id == first.id and f'"previousDigest":"{first.digest}"' in second.statement
