"""Issue 13 in the ledger: proof of presence beyond the allowance, and refusals kept under their key.

Runs on SQLite (multi-statement path) and, with COALITION_TEST_DATABASE_URL, on PostgreSQL,
where a redemption without proof within the allowance takes the one-statement fast path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select
from test_ledger_concurrency import PG_URL, outcome, race

from coalition.crypto import NetworkKeys
from coalition.ledger import refusals
from coalition.ledger.invariants import assert_ledger_consistent, ledger_violations
from coalition.ledger.models import EntryKind, PresenceProof, Refusal
from coalition.ledger.presence import MAX_WRONG_PROOFS, presence_code
from coalition.partners.models import MerchantStatus
from coalition.partners.service import set_merchant_status
from coalition.worker import Worker


def allow(points: int) -> Any:
    async def allowance(now: dt.datetime) -> int:
        return points
    return allowance


@pytest.fixture
def code(keys: NetworkKeys, clock: Any, net: Any) -> Any:
    return lambda loyalty_id=None: presence_code(keys, loyalty_id or net.loyalty_id, clock())


# ---------------------------------------------------------------- proof of presence


async def test_small_redemptions_pass_without_proof_up_to_the_allowance(net: Any, probe: Any, clock: Any) -> None:
    net.ledger.allowance = allow(50)
    await net.earn(300)
    # the README walk-through: redeem 20 and hold 30 without proof
    await net.redeem(20)
    await net.authorize(30)
    # one more point from the same merchant needs the member's proof; nothing is written
    await probe.unchanged("MEMBER_PROOF_REQUIRED", lambda: net.redeem(1), field="memberProof")
    await probe.unchanged("MEMBER_PROOF_REQUIRED", lambda: net.authorize(1))
    # another merchant has its own allowance
    await net.redeem(50, net.c)
    # the window rolls: 24 hours later the allowance is back
    clock.advance(hours=24, seconds=1)
    await net.redeem(50)


async def test_holds_count_as_they_stand(net: Any, probe: Any) -> None:
    net.ledger.allowance = allow(50)
    await net.earn(300)
    voided = await net.authorize(50)
    await net.ledger.void(merchant_id=net.b.id, hold_id=voided.hold.id, idempotency_key="v")
    captured = await net.authorize(50)  # a voided hold takes nothing
    await net.ledger.capture(merchant_id=net.b.id, hold_id=captured.hold.id, idempotency_key="c", points=10)
    await net.redeem(40)  # the capture took 10 of the 50
    await probe.unchanged("MEMBER_PROOF_REQUIRED", lambda: net.redeem(1))


async def test_a_proof_backs_one_redemption_beyond_the_allowance(net: Any, probe: Any, code: Any, db: Any) -> None:
    net.ledger.allowance = allow(50)
    await net.earn(1000)
    proof = code()
    result = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=400,
                                     idempotency_key="big", member_proof=proof)
    assert result.member.balance == 600
    # the same code again, even at another merchant: refused, nothing written
    for merchant in (net.b, net.c):
        await probe.unchanged("INVALID_MEMBER_PROOF", lambda m=merchant: net.ledger.redeem(
            merchant_id=m.id, loyalty_id=net.loyalty_id, points=100, idempotency_key=f"again-{m.id}",
            member_proof=proof), field="memberProof")
    # a redemption with proof does not use up the allowance
    await net.redeem(50)
    # a retry of the first with the same key replays it
    again = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=400,
                                    idempotency_key="big", member_proof=proof)
    assert again.replayed and again.entry.id == result.entry.id
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(PresenceProof))).scalar_one() == 1


async def test_a_hold_with_proof(net: Any, probe: Any, code: Any) -> None:
    net.ledger.allowance = allow(0)  # every redemption needs the proof
    await net.earn(100)
    await probe.unchanged("MEMBER_PROOF_REQUIRED", lambda: net.authorize(10))
    held = await net.ledger.authorize(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=60,
                                      idempotency_key="h", member_proof=code())
    captured = await net.ledger.capture(merchant_id=net.b.id, hold_id=held.hold.id, idempotency_key="c")
    assert captured.member.balance == 40


async def test_wrong_expired_and_used_proofs_get_one_code(net: Any, probe: Any, code: Any, clock: Any) -> None:
    net.ledger.allowance = allow(0)
    await net.earn(100)
    current = code()
    _, other_member = await net.new_member()
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in current)  # digits, but not ASCII ones
    wrong = [str((int(current) + 1) % 10**8).zfill(8), fullwidth, "12\x0045678", code(other_member)]
    assert len(wrong) < MAX_WRONG_PROOFS
    for i, proof in enumerate(wrong):
        error = await probe.error(net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1,
                                                    idempotency_key=f"w{i}", member_proof=proof),
                                  "INVALID_MEMBER_PROOF")
        assert current not in error.message
    # the previous step's code is still good (a code lives 30 to 60 s); two steps back it is not
    clock.advance(seconds=30)
    await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="late",
                            member_proof=current)
    stale = code()
    clock.advance(seconds=60)
    await probe.unchanged("INVALID_MEMBER_PROOF", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="stale", member_proof=stale))


async def test_wrong_proofs_lock_one_merchant_out_for_an_hour(net: Any, probe: Any, code: Any, clock: Any) -> None:
    net.ledger.allowance = allow(0)
    await net.earn(100)
    for i in range(MAX_WRONG_PROOFS):
        await probe.error(net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1,
                                            idempotency_key=f"guess-{i}", member_proof="00000000"),
                          "INVALID_MEMBER_PROOF")
    # then even the right code is refused to that merchant, not to another
    await probe.unchanged("INVALID_MEMBER_PROOF", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="right", member_proof=code()))
    await net.ledger.redeem(merchant_id=net.c.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="c",
                            member_proof=code())
    clock.advance(hours=1, seconds=30)
    await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="later",
                            member_proof=code())


async def test_concurrent_redemptions_cannot_both_slip_under_the_allowance(net: Any, probe: Any) -> None:
    net.ledger.allowance = allow(50)
    await net.earn(500)
    results = await asyncio.gather(*(outcome(lambda i=i: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=5, idempotency_key=f"r{i}")) for i in range(40)))
    assert Counter(results) == {"OK": 10, "MEMBER_PROOF_REQUIRED": 30}
    assert (await probe.member(net.member_id)).balance == 450


async def test_one_proof_raced_by_many_redemptions_is_used_once(net: Any, probe: Any, code: Any) -> None:
    net.ledger.allowance = allow(0)
    await net.earn(1000)
    proof = code()
    results = await asyncio.gather(*(outcome(lambda i=i: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=100, idempotency_key=f"r{i}", member_proof=proof))
        for i in range(10)))
    assert Counter(results) == {"OK": 1, "INVALID_MEMBER_PROOF": 9}
    assert (await probe.member(net.member_id)).balance == 900


# ---------------------------------------------------------------- refusals under their key


async def test_a_kept_refusal_conflicts_with_other_input(net: Any, probe: Any) -> None:
    await net.earn(5)
    await probe.error(net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20,
                                        idempotency_key="k"), "INSUFFICIENT_POINTS")
    await probe.unchanged("IDEMPOTENCY_KEY_CONFLICT", lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=2, idempotency_key="k"))
    # the key is the merchant's: another merchant's same key is its own
    await net.ledger.redeem(merchant_id=net.c.id, loyalty_id=net.loyalty_id, points=2, idempotency_key="k")


async def test_every_state_refusal_is_kept(net: Any, probe: Any, db: Any) -> None:
    await net.earn(100)
    held = await net.authorize(10)
    # capture beyond the hold, then within it under the same key: the refusal stays
    await probe.error(net.ledger.capture(merchant_id=net.b.id, hold_id=held.hold.id, idempotency_key="c",
                                         points=11), "CAPTURE_EXCEEDS_HOLD")
    await probe.unchanged("CAPTURE_EXCEEDS_HOLD", lambda: net.ledger.capture(
        merchant_id=net.b.id, hold_id=held.hold.id, idempotency_key="c", points=11))
    # a suspended merchant's refusal stays after it is reactivated
    await set_merchant_status(db, net.c.id, MerchantStatus.SUSPENDED)
    await probe.error(net.ledger.redeem(merchant_id=net.c.id, loyalty_id=net.loyalty_id, points=1,
                                        idempotency_key="s"), "MERCHANT_SUSPENDED")
    await set_merchant_status(db, net.c.id, MerchantStatus.ACTIVE)
    await probe.unchanged("MERCHANT_SUSPENDED", lambda: net.ledger.redeem(
        merchant_id=net.c.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="s"))
    # input errors are not kept: the key is still free for a good request
    await probe.error(net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=0,
                                        idempotency_key="bad"), "INVALID_POINTS")
    await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=1, idempotency_key="bad")


async def test_many_retries_of_a_refused_key_all_get_the_refusal(net: Any, probe: Any) -> None:
    await net.earn(5)
    results = await asyncio.gather(*(outcome(lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20, idempotency_key="same")) for _ in range(20)))
    assert Counter(results) == {"INSUFFICIENT_POINTS": 20}
    await net.earn(50)
    results = await asyncio.gather(*(outcome(lambda: net.ledger.redeem(
        merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20, idempotency_key="same")) for _ in range(20)))
    assert Counter(results) == {"INSUFFICIENT_POINTS": 20}
    assert await probe.entries(kind=EntryKind.REDEEM) == []


async def test_a_recorded_success_wins_over_a_recorded_refusal(net: Any, db: Any, clock: Any) -> None:
    # given a race that wrote both: the entry, and a refusal under the same key
    await net.earn(50)
    done = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20, idempotency_key="k")
    async with db.transaction() as conn:
        await conn.execute(insert(Refusal).values(
            merchant_id=net.b.id, idempotency_key="k", request_hash=done.entry.request_hash, code="INSUFFICIENT_POINTS",
            message="refused", created_at=clock()))
    again = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20, idempotency_key="k")
    assert again.replayed and again.entry.id == done.entry.id
    # and a refusal is not written over an entry that has the key
    await refusals.record(db, merchant_id=net.b.id, key=done.entry.idempotency_key or "", fingerprint="x" * 64,
                          error=refusals.RecordedRefusal("no", code="X"), now=clock())


async def test_kept_refusals_expire_with_the_retention_period(net: Any, probe: Any, db: Any, clock: Any,
                                                              settings: Any, keys: Any) -> None:
    await net.earn(5)
    await probe.error(net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20,
                                        idempotency_key="r"), "INSUFFICIENT_POINTS")
    await net.earn(20)
    worker = Worker(db, settings, keys, clock=clock, settle=False)
    try:
        clock.advance(seconds=settings.idempotency_retention_s - 60)
        assert (await worker.tick()).refusals_purged == 0
        await probe.unchanged("INSUFFICIENT_POINTS", lambda: net.ledger.redeem(
            merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20, idempotency_key="r"))
        clock.advance(seconds=61)
        assert (await worker.tick()).refusals_purged == 1
    finally:
        await worker.aclose()
    result = await net.ledger.redeem(merchant_id=net.b.id, loyalty_id=net.loyalty_id, points=20, idempotency_key="r")
    assert result.replayed is False and result.member.balance == 5


# ---------------------------------------------------------------- two processes (PostgreSQL)


pg_only = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set COALITION_TEST_DATABASE_URL")


@pytest.mark.services
@pg_only
async def test_two_processes_cannot_pass_the_allowance_together(net: Any, probe: Any, db: Any,
                                                               settings: Any) -> None:
    await net.earn(500)
    counts = await race(settings, net, 40, "p", "2", env_extra={"COALITION_REDEEM_WITHOUT_PROOF_POINTS": "60"})
    assert sum(counts, Counter()) == {"OK": 30, "MEMBER_PROOF_REQUIRED": 50}, counts
    assert (await probe.member(net.member_id)).balance == 440
    async with db.read() as conn:
        await assert_ledger_consistent(conn)


@pytest.mark.services
@pg_only
async def test_two_processes_retrying_a_refused_key_get_one_outcome(net: Any, probe: Any, db: Any,
                                                                    settings: Any) -> None:
    await net.earn(5)
    counts = await race(settings, net, 20, "same", "10", "same-key")
    assert sum(counts, Counter()) == {"INSUFFICIENT_POINTS": 40}, counts
    await net.earn(100)
    counts = await race(settings, net, 20, "same", "10", "same-key")
    assert sum(counts, Counter()) == {"INSUFFICIENT_POINTS": 40}, counts
    assert await probe.entries(kind=EntryKind.REDEEM) == []


async def test_the_invariants_catch_a_proof_on_the_wrong_entry(net: Any, db: Any, clock: Any) -> None:
    earned = await net.earn(10)
    async with db.transaction() as conn:
        await conn.execute(insert(PresenceProof).values(member_id=net.member_id, step=1, merchant_id=net.a.id,
                                                        entry_id=earned.entry.id, created_at=clock()))
    async with db.read() as conn:
        assert any("proof of presence" in p for p in await ledger_violations(conn))
    async with db.transaction() as conn:
        await conn.execute(delete(PresenceProof))
