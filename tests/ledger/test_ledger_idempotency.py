"""The idempotent-write helper's precedence (coalition/ledger/idempotency.py), on every shape of write.

replay (same key, same input) > conflict (same key, other input) > suspended merchant >
not found > the write's own refusals. Runs on both ledger paths (tests/ledger/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from coalition.errors import IdempotencyKeyConflict, NotFound, Refused
from coalition.ledger.idempotency import KeyColumns, Outcomes, find_earlier, request_hash
from coalition.ledger.models import Entry
from coalition.loyalty_id import new_loyalty_id
from coalition.partners.models import MerchantStatus
from coalition.partners.service import set_merchant_status

UNKNOWN_LOYALTY_ID = new_loyalty_id()  # well formed, nobody's


async def test_a_replay_wins_over_a_suspension_and_a_conflict_over_both(net: Any, probe: Any, db: Any) -> None:
    earned = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500,
                                   idempotency_key="e1")
    redeemed = await net.ledger.redeem(merchant_id=net.a.id, loyalty_id=net.loyalty_id, points=2,
                                       idempotency_key="r1")
    await set_merchant_status(db, net.a.id, MerchantStatus.SUSPENDED)
    again = await net.ledger.earn(merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=500,
                                  idempotency_key="e1")
    assert again.replayed and again.entry.id == earned.entry.id
    assert (await net.ledger.redeem(merchant_id=net.a.id, loyalty_id=net.loyalty_id, points=2,
                                    idempotency_key="r1")).entry.id == redeemed.entry.id
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=net.loyalty_id, purchase_amount_minor=900, idempotency_key="e1"))
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.earn(
        merchant_id=net.a.id, loyalty_id=UNKNOWN_LOYALTY_ID, purchase_amount_minor=500, idempotency_key="e2"))


async def test_a_suspension_comes_before_not_found_and_the_writes_own_refusals(net: Any, probe: Any,
                                                                               db: Any) -> None:
    earned = await net.earn(10, merchant=net.b)
    held = await net.authorize(5, merchant=net.b)
    await net.redeem(1, merchant=net.b)
    await set_merchant_status(db, net.b.id, MerchantStatus.SUSPENDED)
    missing = held.hold.id + 1000
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.capture(
        merchant_id=net.b.id, hold_id=missing, idempotency_key="c1"))
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.capture(  # beyond the hold: its own refusal
        merchant_id=net.b.id, hold_id=held.hold.id, points=6, idempotency_key="c2"))
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.void(
        merchant_id=net.b.id, hold_id=held.hold.id, idempotency_key="v1"))
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.reverse(
        merchant_id=net.b.id, transaction_id=earned.entry.id + 1000, idempotency_key="x1"))
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.reverse(  # a HOLD is not reversible
        merchant_id=net.b.id, transaction_id=held.entry.id, idempotency_key="x2"))
    await set_merchant_status(db, net.b.id, MerchantStatus.ACTIVE)
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.capture(  # kept under its key: a replay
        merchant_id=net.b.id, hold_id=missing, idempotency_key="c1"))
    await probe.unchanged("HOLD_NOT_FOUND", lambda: net.ledger.capture(
        merchant_id=net.b.id, hold_id=missing, idempotency_key="c3"))
    await probe.unchanged("TRANSACTION_NOT_FOUND", lambda: net.ledger.reverse(
        merchant_id=net.b.id, transaction_id=earned.entry.id + 1000, idempotency_key="x3"))
    await probe.unchanged("NOT_REVERSIBLE", lambda: net.ledger.reverse(
        merchant_id=net.b.id, transaction_id=held.entry.id, idempotency_key="x4"))


async def test_a_network_bonus_key_replays_conflicts_and_names_a_missing_member(net: Any, probe: Any) -> None:
    paid = await net.ledger.award_network_bonus(member_id=net.member_id, points=7, idempotency_key="b1")
    assert (await net.ledger.award_network_bonus(member_id=net.member_id, points=7,
                                                 idempotency_key="b1")).entry.id == paid.entry.id
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: net.ledger.award_network_bonus(
        member_id=net.member_id, points=8, idempotency_key="b1"))
    await probe.unchanged("MEMBER_NOT_FOUND", lambda: net.ledger.award_network_bonus(
        member_id=net.member_id + 1000, points=7, idempotency_key="b2"))


async def test_find_earlier_reads_a_declared_key_and_tells_a_retry_from_other_input(net: Any, db: Any) -> None:
    keys = KeyColumns(Entry, key="idempotency_key", fingerprint="request_hash", scope=("merchant_id",))
    earned = await net.earn(3)
    async with db.read() as conn:
        found = await find_earlier(conn, keys, (net.a.id,), earned.entry.idempotency_key, earned.entry.request_hash)
        assert found is not None and found.id == earned.entry.id
        assert await find_earlier(conn, keys, (net.b.id,), earned.entry.idempotency_key, "other") is None
        with pytest.raises(IdempotencyKeyConflict):
            await find_earlier(conn, keys, (net.a.id,), earned.entry.idempotency_key, request_hash("earn", x=1))
    async with db.sessions.begin() as session:  # in a session: the session's own object
        found = await find_earlier(session, keys, (net.a.id,), earned.entry.idempotency_key,
                                   earned.entry.request_hash)
        assert found is not None and found in session


async def test_outcomes_apply_in_their_order() -> None:
    asked: list[str] = []

    async def nothing() -> None:
        asked.append("earlier")
        return None

    async def earlier() -> str:
        return "the earlier result"

    outcomes: Outcomes[Any] = Outcomes(earlier=nothing)
    with pytest.raises(Refused, match="own"):
        await outcomes.explain(Refused("its own refusal", code="OWN"))
    assert await Outcomes(earlier=earlier).explain(Refused("never raised", code="OWN")) == "the earlier result"
    with pytest.raises(NotFound):
        await outcomes.found(None, NotFound("missing", code="X_NOT_FOUND"))
    assert await outcomes.found("row", NotFound("missing", code="X_NOT_FOUND")) == "row"
    assert asked == ["earlier"]
