"""The programs job: a stamp, quest visit or refund's undoing lost by a crash after the commit is applied late, once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from process_race import race
from sqlalchemy import func, select

from coalition.giftcards.service import GiftCards
from coalition.ledger.models import Entry, EntryKind
from coalition.portability.service import import_members, limits_from
from coalition.programs import catchup, quests, stamps
from coalition.programs.catchup import CatchUp
from coalition.programs.hooks import after_earn, after_reversal
from coalition.programs.reward_models import QuestCompletion, QuestVisit, Reward, Stamp, Voucher, VoucherStatus
from coalition.programs.rewards import create_reward
from coalition.programs.vouchers import claim_reward

DAY_S = 24 * 3600.0
GRACE_S = 60.0
PG_URL = os.environ.get("COALITION_TEST_DATABASE_URL")
RACE_WORKER = Path(__file__).with_name("catchup_race_worker.py")


async def card(shops: Any, required: int = 3, min_purchase: int = 500) -> Any:
    rw = await create_reward(shops.ledger.db, merchant_id=shops.a.id, name="Free coffee", points_cost=50,
                             idempotency_key=shops.key("rw"), now=shops.now)
    return await stamps.create_stamp_card(shops.ledger, merchant_id=shops.a.id, name="Coffee card",
                                          stamps_required=required, min_purchase_minor=min_purchase,
                                          reward_id=rw.id, idempotency_key=shops.key("card"), now=shops.now)


async def quest(shops: Any, visits: int = 2, bonus: int = 100, window_days: int = 30) -> Any:
    return await quests.create_quest(
        shops.ledger.db, name="Tour", merchant_ids=[shops.a.id, shops.b.id, shops.c.id], visits_required=visits,
        window_days=window_days, bonus_points=bonus, funding="NETWORK", starts_at=shops.now - dt.timedelta(days=1),
        ends_at=shops.now + dt.timedelta(days=60), idempotency_key=shops.key("q"), now=shops.now)


async def crashed_earn(shops: Any, member: Any, amount: int = 600, shop: Any = None) -> Any:
    """An earn whose process died after the ledger's commit: the programs' hook never ran."""
    return await shops.ledger.earn(merchant_id=(shop or shops.a).id, loyalty_id=member.loyalty_id,
                                   purchase_amount_minor=amount, idempotency_key=shops.key("earn"))


async def run_job(shops: Any, look_back_s: float = DAY_S) -> CatchUp:
    return await catchup.catch_up(shops.ledger, now=shops.clock(), look_back_s=look_back_s, grace_s=GRACE_S)


async def stamp_rows(db: Any, member: Any) -> list[tuple[int, bool]]:
    async with db.read() as conn:
        return [tuple(r) for r in await conn.execute(  # type: ignore[misc]
            select(Stamp.earn_entry_id, Stamp.removed).where(Stamp.member_id == member.id).order_by(Stamp.id))]


async def progress(shops: Any, member: Any) -> list[tuple[int, int]]:
    rows = await stamps.member_stamp_progress(shops.ledger.db, member_id=member.id, merchant_id=None)
    return [(r.total_stamps, r.completed_cards) for r in rows]


async def vouchers_of(db: Any, member: Any) -> list[Any]:
    async with db.read() as conn:
        return list(await conn.execute(select(Voucher).where(Voucher.member_id == member.id).order_by(Voucher.id)))


async def quest_bonuses(db: Any, member: Any) -> list[int]:
    async with db.read() as conn:
        return list((await conn.execute(select(Entry.points).where(
            Entry.member_id == member.id, Entry.kind == EntryKind.BONUS))).scalars())


async def test_earns_whose_hook_was_lost_are_stamped_once_and_a_full_card_issues_one_voucher(
    shops: Any, db: Any,
) -> None:
    # given a 3-stamp card and three purchases whose hook a crash lost
    c = await card(shops, required=3)
    member = await shops.member()
    earns = [await crashed_earn(shops, member) for _ in range(3)]
    assert await stamp_rows(db, member) == []
    # when the job runs once the grace period has passed
    shops.clock.advance(seconds=GRACE_S + 1)
    done = await run_job(shops)
    # then each purchase has its stamp, the full card its one voucher, and the next card started
    assert done == CatchUp(stamps=3)
    assert await stamp_rows(db, member) == [(e.entry.id, False) for e in earns]
    assert await progress(shops, member) == [(3, 1)]
    (voucher,) = await vouchers_of(db, member)
    assert (voucher.stamp_card_id, voucher.card_number, voucher.status) == (c.id, 1, VoucherStatus.ISSUED)
    assert voucher.created_at == shops.now  # valid from when the member got it, not from the purchase
    # and a second run finds nothing left
    assert await run_job(shops) == CatchUp()
    assert len(await vouchers_of(db, member)) == 1 and await progress(shops, member) == [(3, 1)]


async def test_the_grace_period_leaves_fresh_earns_to_the_live_hook(shops: Any, db: Any) -> None:
    await card(shops)
    member = await shops.member()
    await crashed_earn(shops, member)
    shops.clock.advance(seconds=GRACE_S - 1)
    assert await run_job(shops) == CatchUp()
    shops.clock.advance(seconds=2)
    assert await run_job(shops) == CatchUp(stamps=1)


async def test_what_the_live_path_does_not_stamp_the_job_does_not_either(shops: Any, db: Any) -> None:
    # an earn made before the card existed, one below its minimum, one at another shop, one refunded
    member = await shops.member()
    await crashed_earn(shops, member)
    shops.clock.advance(seconds=1)
    await card(shops, min_purchase=500)
    await crashed_earn(shops, member, amount=499)
    await crashed_earn(shops, member, shop=shops.b)
    refunded = await crashed_earn(shops, member)
    await shops.ledger.reverse(merchant_id=shops.a.id, transaction_id=refunded.entry.id, idempotency_key="r1")
    shops.clock.advance(seconds=GRACE_S + 1)
    assert await run_job(shops) == CatchUp()
    assert await stamp_rows(db, member) == []


async def test_earns_older_than_the_look_back_are_left(shops: Any, db: Any) -> None:
    await card(shops)
    member = await shops.member()
    await crashed_earn(shops, member)
    shops.clock.advance(seconds=3600)
    recent = await crashed_earn(shops, member)
    shops.clock.advance(seconds=GRACE_S + 1)
    assert await run_job(shops, look_back_s=3600) == CatchUp(stamps=1)
    assert await stamp_rows(db, member) == [(recent.entry.id, False)]


async def test_imported_history_is_never_stamped(shops: Any, db: Any, keys: Any, settings: Any,
                                                 tmp_path: Path) -> None:
    # given a card with no minimum (an opening balance has no purchase amount) and an import at its shop:
    # an opening balance without a date and a dated purchase
    await card(shops, min_purchase=0)
    path = tmp_path / "members.csv"
    path.write_text("type,external_id,email,balance,points,amount_minor,date,reference\n"
                    "member,h-1,ann@example.com,50,,,,\n"
                    "earn,h-1,,,10,1000,2025-03-01T09:30:00Z,visit\n")
    result = await import_members(db, keys, merchant_id=shops.a.id, path=path, limits=limits_from(settings),
                                  expiry_days=settings.points_expiry_days, now=shops.now)
    assert result.status == "IMPORTED" and result.entries_created == 2, result.errors
    shops.clock.advance(seconds=GRACE_S + 1)
    # then the job stamps none of it
    assert await run_job(shops) == CatchUp()
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(Stamp))).scalar_one() == 0


async def test_a_gift_card_sales_points_are_never_stamped(shops: Any, db: Any, keys: Any, settings: Any) -> None:
    await card(shops, min_purchase=0)
    member = await shops.member()
    earning = GiftCards(db, dataclasses.replace(settings, gift_card_earns_points=True), keys, clock=shops.clock)
    sold = await earning.issue(merchant_id=shops.a.id, amount_minor=2000, idempotency_key="g1",
                               loyalty_id=member.loyalty_id)
    assert sold.points_earned == 20
    shops.clock.advance(seconds=GRACE_S + 1)
    assert await run_job(shops) == CatchUp()
    assert await stamp_rows(db, member) == []


async def test_a_lost_quest_visit_completes_the_quest_once(shops: Any, db: Any) -> None:
    # given a 2-shop quest, a visit the hook recorded and one a crash lost
    await quest(shops, visits=2, bonus=100)
    member = await shops.member()
    await after_earn(shops.ledger, await crashed_earn(shops, member, shop=shops.a))
    shops.clock.advance(seconds=5)
    await crashed_earn(shops, member, shop=shops.b)
    assert await quest_bonuses(db, member) == []
    shops.clock.advance(seconds=GRACE_S + 1)
    # when the job runs, twice
    assert await run_job(shops) == CatchUp(visits=1)
    assert await run_job(shops) == CatchUp()
    # then the bonus is paid once, now (the ledger's entries keep their ids and times in step)
    assert await quest_bonuses(db, member) == [100]
    async with db.read() as conn:
        paid_at = (await conn.execute(select(Entry.created_at).where(Entry.kind == EntryKind.BONUS))).scalar_one()
    assert paid_at == shops.now


async def test_a_replayed_visit_never_moves_the_latest_visit_back(shops: Any, db: Any) -> None:
    q = await quest(shops, visits=3)
    member = await shops.member()
    lost = await crashed_earn(shops, member, shop=shops.a)
    shops.clock.advance(seconds=30)
    later = await crashed_earn(shops, member, shop=shops.a)
    await after_earn(shops.ledger, later)
    shops.clock.advance(seconds=GRACE_S + 1)
    # the lost visit is superseded by the later one at the same shop: nothing to do
    assert await run_job(shops) == CatchUp()
    # and replaying it anyway (a retried earn) keeps the later time
    await after_earn(shops.ledger, lost)
    async with db.read() as conn:
        at = (await conn.execute(select(QuestVisit.last_visit_at).where(QuestVisit.quest_id == q.id))).scalar_one()
    assert at == later.entry.created_at


async def test_a_replayed_old_visit_counts_only_with_visits_within_the_window_of_it(shops: Any, db: Any) -> None:
    # given a 2-shop quest over 1 day: a visit at A the hook lost, then one at B two days later
    await quest(shops, visits=2, window_days=1)
    member = await shops.member()
    await crashed_earn(shops, member, shop=shops.a)
    shops.clock.advance(days=2)
    await after_earn(shops.ledger, await crashed_earn(shops, member, shop=shops.b))
    shops.clock.advance(seconds=GRACE_S + 1)
    # the job records A's visit, but the two were never within a day of each other: no bonus
    assert await run_job(shops, look_back_s=3 * DAY_S) == CatchUp(visits=1)
    assert await quest_bonuses(db, member) == []


async def test_a_lost_refund_hook_unstamps_and_cancels_the_unused_voucher(shops: Any, db: Any) -> None:
    # given a 2-stamp card filled by two purchases, the second then refunded by a process that died
    c = await card(shops, required=2)
    member = await shops.member()
    first = await crashed_earn(shops, member)
    await after_earn(shops.ledger, first)
    second = await crashed_earn(shops, member)
    await after_earn(shops.ledger, second)
    (voucher,) = await vouchers_of(db, member)
    await shops.ledger.reverse(merchant_id=shops.a.id, transaction_id=second.entry.id, idempotency_key="r1")
    shops.clock.advance(seconds=GRACE_S + 1)
    # when the job runs, twice
    assert await run_job(shops) == CatchUp(reversals=1)
    assert await run_job(shops) == CatchUp()
    # then the refunded purchase's stamp is gone and the card's voucher cancelled, the card open again
    assert await stamp_rows(db, member) == [(first.entry.id, False), (second.entry.id, True)]
    assert await progress(shops, member) == [(1, 0)]
    (after,) = await vouchers_of(db, member)
    assert (after.id, after.stamp_card_id, after.status) == (voucher.id, c.id, VoucherStatus.CANCELLED)


async def test_a_refunded_claim_whose_hook_was_lost_cancels_its_voucher_and_restocks(shops: Any, db: Any) -> None:
    member = await shops.member()
    await shops.earn(member, 100)
    rw = await create_reward(db, merchant_id=shops.a.id, name="Mug", points_cost=40, stock=3,
                             idempotency_key="rw", now=shops.now)
    claimed = await claim_reward(shops.ledger, reward_id=rw.id, loyalty_id=member.loyalty_id,
                                 merchant_id=shops.a.id, idempotency_key="c1", now=shops.now)
    refund = await shops.ledger.reverse(merchant_id=shops.a.id, transaction_id=claimed.voucher.redeem_entry_id,
                                        idempotency_key="r1")
    shops.clock.advance(seconds=GRACE_S + 1)
    assert await run_job(shops) == CatchUp(reversals=1)
    assert await run_job(shops) == CatchUp()
    (voucher,) = await vouchers_of(db, member)
    assert (voucher.status, voucher.reversal_entry_id) == (VoucherStatus.CANCELLED, refund.entry.id)
    async with db.read() as conn:
        assert (await conn.execute(select(Reward.stock_left).where(Reward.id == rw.id))).scalar_one() == 3
    # the live hook running late too changes nothing more
    await after_reversal(shops.ledger, refund)
    assert (await vouchers_of(db, member))[0].status == VoucherStatus.CANCELLED


async def test_two_jobs_and_the_live_hook_racing_apply_each_step_once(shops: Any, db: Any) -> None:
    # given 8 purchases at A (a 4-stamp card, a quest shop) and one at B, none with its hook run
    await card(shops, required=4)
    await quest(shops, visits=2, bonus=100)
    member = await shops.member()
    earns = [await crashed_earn(shops, member) for _ in range(8)]
    earns.append(await crashed_earn(shops, member, shop=shops.b))
    shops.clock.advance(seconds=GRACE_S + 1)
    # when two jobs and every late hook run at once
    await asyncio.gather(run_job(shops), run_job(shops), *(after_earn(shops.ledger, e) for e in earns))
    # then 8 stamps, 2 full cards with a voucher each, and one quest bonus
    assert sorted(e for e, _ in await stamp_rows(db, member)) == [e.entry.id for e in earns[:8]]
    assert await progress(shops, member) == [(8, 2)]
    assert [v.card_number for v in await vouchers_of(db, member)] == [1, 2]
    assert await quest_bonuses(db, member) == [100]
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(QuestCompletion))).scalar_one() == 1
    assert await run_job(shops) == CatchUp()


async def test_the_windows_first_entry_is_found_by_its_id(shops: Any, db: Any) -> None:
    member = await shops.member()
    ids = []
    for _ in range(7):
        ids.append((await crashed_earn(shops, member)).entry.id)
        shops.clock.advance(minutes=1)
    start = shops.now - dt.timedelta(minutes=7)
    async with db.read() as conn:
        assert await catchup.first_entry_id_since(conn, start) == ids[0]
        assert await catchup.first_entry_id_since(conn, start + dt.timedelta(seconds=90)) == ids[2]
        assert await catchup.first_entry_id_since(conn, shops.now) == ids[-1] + 1


@pytest.mark.services
@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: set COALITION_TEST_DATABASE_URL (make test-services)")
async def test_two_processes_each_running_two_jobs_and_the_live_hook_apply_each_step_once(
    shops: Any, db: Any, settings: Any,
) -> None:
    # given 12 purchases at A (a 4-stamp card, a quest shop) and one at B, none with its hook run
    await card(shops, required=4)
    await quest(shops, visits=2, bonus=100)
    member = await shops.member()
    earns = [await crashed_earn(shops, member) for _ in range(12)]
    earns.append(await crashed_earn(shops, member, shop=shops.b))
    later = shops.now + dt.timedelta(seconds=settings.programs_catchup_grace_s + 1)
    # when two processes each run two jobs and the late hook of every purchase, at the same moment
    outputs = await race(RACE_WORKER, [[settings.database_url, later.isoformat(), *(str(e.entry.id) for e in earns)]
                                       for _ in range(2)])
    # then every step is there exactly once, whoever ran it (each job found some steps missing)
    assert all(len(out) == 2 for out in outputs), outputs
    assert sorted(e for e, _ in await stamp_rows(db, member)) == [e.entry.id for e in earns[:12]]
    assert await progress(shops, member) == [(12, 3)]
    assert [v.card_number for v in await vouchers_of(db, member)] == [1, 2, 3]
    assert await quest_bonuses(db, member) == [100]
    shops.clock.advance(seconds=settings.programs_catchup_grace_s + 1)
    assert await run_job(shops) == CatchUp()
