"""Issue 13, item 4: from what one merchant can read, guess another merchant's figures.

The attack: a merchant reads a closed batch (its own signed export, the batch statement,
its report) and collects every hash in it. A merchant that only issued points has a
statement that is a function of one unknown (its points issued): the format is public,
and the batch statement names the period, the currency and the policy. So the attacker
builds the candidate statement for each guess, hashes it and looks for the hash.

Before salting (version-1 batch statements listed the plain SHA-256 of every merchant's
statement) this found the victim's figure at once; now every commitment is salted with a
secret 256-bit nonce and no candidate, not even the true statement, hashes to anything
the attacker can read.
"""

from __future__ import annotations

import json
import re
from typing import Any

from coalition.settlement.exports import export_batch
from coalition.settlement.service import batch_positions, export_statement, export_text
from coalition.settlement.statements import merchant_statement, sha256_hex

HEX_HASH = re.compile(r"[0-9a-f]{64}")
VICTIM_POINTS = 1234
GUESSES = range(1, 5001)


def candidate_statement(batch: dict[str, Any], victim: int, points: int) -> str:
    """The statement of a merchant that issued ``points`` and did nothing else, under the batch's policy."""
    (policy,) = batch["policies"]
    charge = points * policy["pointValueMinor"]
    figures = {"pointsIssued": points, "pointsHonored": 0, "pointsReversed": 0, "pointsExpired": 0,
               "chargesMinor": charge, "reimbursementsMinor": 0, "breakageMinor": 0, "adjustmentsMinor": 0,
               "netMinor": -charge}
    line = {"kind": "ISSUED", "policyId": policy["id"], "issuerMerchantId": victim, "redeemerMerchantId": None,
            "points": points, "issuerMinor": -charge, "redeemerMinor": 0, "exactMinor": str(-charge),
            "reversalEntryId": None, "originalEntryId": None, "originalBatchId": None}
    return merchant_statement(batch_seq=batch["seq"], period_start=batch["periodStart"],
                              period_end=batch["periodEnd"], currency=batch["currency"], merchant_id=victim,
                              figures=figures, lines=[line])


def brute_force(readable: str, batch: dict[str, Any], victim: int) -> int | None:
    """The victim's points issued, if some guess hashes to a hash the attacker can read."""
    seen = set(HEX_HASH.findall(readable))
    for points in GUESSES:
        if sha256_hex(candidate_statement(batch, victim, points)) in seen:
            return points
    return None


async def test_a_merchant_cannot_brute_force_another_merchants_issued_points(shops: Any) -> None:
    s = shops
    # given: A issues and C honors some of A's points; B (the victim) only issues
    await s.earn(100, s.a)
    await s.redeem(30, s.c)
    await s.earn(VICTIM_POINTS, s.b)
    batch = (await s.settle()).batch

    # what C (the attacker) can read: its signed export, the batch statement, its report
    own = export_text(await export_statement(s.db, s.keys, batch.id, s.c.id))
    report = (await export_batch(s.db, s.settings, s.keys, batch_id=batch.id, merchant_id=s.c.id,
                                 fmt="html")).content.decode()
    readable = "\n".join([own, batch.statement, batch.digest, report])
    batch_document = json.loads(json.loads(own)["batchStatement"])

    # the guess space holds the truth, and the template is right: it is B's statement word for word
    assert VICTIM_POINTS in GUESSES
    (victim,) = await batch_positions(s.db, batch.id, merchant_id=s.b.id)
    assert candidate_statement(batch_document, s.b.id, VICTIM_POINTS) == victim.statement

    # then no guess matches anything C can read: B's plain hash is nowhere in it
    assert brute_force(readable, batch_document, s.b.id) is None
    assert sha256_hex(victim.statement) not in readable
