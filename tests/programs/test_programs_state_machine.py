"""The ledger's state machine (tests/ledger_machine.py) extended with the programs: stamp cards, reward claims
(at the till or from the wallet), voucher use and expiry, and status tiers (a policy change re-reviews every
member; the worker's review moves members as their qualifying points cross the thresholds).

Every earn and refund goes through the live path (``coalition.programs.purchases``), so an earn at the
card's shop stamps it and a refund takes the stamp back, unless a crash lost the hook (rule ``crash``: the
next earn or refund is written by the ledger alone); the worker's programs job (rule ``catch_up``) then
applies what was lost, and the model applies it with it, in the job's order: stamps, then refunds.
The ledger's model of balances, lots and holds gains what the programs add to it: a claim is a redemption
of the reward's points; an expired claim gives them back (the redemption's reversal); a tier multiplier
adds points to the earn (the merchant funds them) or a bonus lot of the network's, which goes with the earn
when it is reversed. After every step the
database agrees with the model (points, vouchers, stock, stamps, the tiers' qualifying points) and
``ledger_violations`` finds nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule
from ledger_machine import EntryModel, LedgerMachine, MemberModel
from sqlalchemy import select

from coalition.ledger.models import Entry
from coalition.ledger.program_earns import attached_bonus_key
from coalition.ledger.service import Ledger
from coalition.programs import catchup, purchases, stamps, vouchers
from coalition.programs.earning import ProgramHook
from coalition.programs.reward_models import Reward, StampProgress, Voucher
from coalition.programs.rewards import create_reward
from coalition.programs.tier_models import MemberTier
from coalition.programs.tier_review import current_tier_policy, qualifying_points, review_tiers, set_tier_policy
from coalition.programs.tiers import extra_points, window_start

COST, STOCK, VALID_DAYS, REQUIRED, MIN_PURCHASE = 15, 3, 2, 2, 500


@dataclass
class VoucherModel:
    member: int
    merchant: int
    status: str
    expires_at: dt.datetime
    redeem_entry_id: int | None  # a claim's redemption; None for a stamp card's voucher
    card_number: int | None = None


class ProgramsMachine(LedgerMachine):
    def __init__(self) -> None:
        self.vouchers: dict[int, VoucherModel] = {}
        self.stamped: set[int] = set()  # earns that stamped the card
        self.stock = STOCK
        self.stamps: dict[int, list[int]] = {}  # member -> [total stamps, completed cards]
        self.policies = 0
        self.reviewed: tuple[dt.datetime, int] | None = None  # (when, how many entries then): the last review
        self.crash_next = False  # the next earn's or refund's hook is lost
        self.hook_lost = False  # the write being modelled lost its hook
        self.lost_earns: list[tuple[Any, MemberModel, int, int]] = []  # what the model applies at the catch-up
        self.lost_reversals: list[tuple[int, EntryModel, Any]] = []
        super().__init__()
        self.run(self.setup_programs())

    def make_ledger(self) -> Ledger:
        return Ledger(self.db, self.settings, clock=self.clock, programs=ProgramHook(self.db, ttl_s=0))

    async def setup_programs(self) -> None:
        card_shop, reward_shop = self.merchants
        self.reward = await create_reward(self.db, merchant_id=reward_shop, name="Book", points_cost=COST,
                                          stock=STOCK, voucher_valid_days=VALID_DAYS, idempotency_key="r",
                                          now=self.clock.now)
        free = await create_reward(self.db, merchant_id=card_shop, name="Coffee", points_cost=1,
                                   voucher_valid_days=VALID_DAYS, idempotency_key="r", now=self.clock.now)
        await stamps.create_stamp_card(self.ledger, merchant_id=card_shop, name="Card", stamps_required=REQUIRED,
                                       min_purchase_minor=MIN_PURCHASE, reward_id=free.id, idempotency_key="c",
                                       now=self.clock.now)
        for m in self.members:
            self.stamps[m.member_id] = [0, 0]

    # ------------------------------------------------------------ the ledger machine's hooks

    def _lose_hook(self) -> bool:
        self.hook_lost, self.crash_next = self.crash_next, False
        return self.hook_lost

    async def earn_call(self, merchant_id: int, loyalty_id: str, amount: int, key: str) -> Any:
        if self._lose_hook():  # the ledger committed, the process died before the hook
            return await self.ledger.earn(merchant_id=merchant_id, loyalty_id=loyalty_id,
                                          purchase_amount_minor=amount, idempotency_key=key)
        return await purchases.earn(self.ledger, merchant_id=merchant_id, loyalty_id=loyalty_id,
                                    purchase_amount_minor=amount, idempotency_key=key)

    async def reverse_call(self, merchant_id: int, entry_id: int, key: str) -> Any:
        if self._lose_hook():
            return await self.ledger.reverse(merchant_id=merchant_id, transaction_id=entry_id, idempotency_key=key)
        return await purchases.reverse(self.ledger, merchant_id=merchant_id, transaction_id=entry_id,
                                       idempotency_key=key)

    def earn_split(self, m: MemberModel, merchant_id: int, base: int) -> tuple[int, int]:
        async def read() -> tuple[Any, int | None]:
            async with self.db.read() as conn:
                kept = (await conn.execute(select(MemberTier.multiplier_percent)
                                           .where(MemberTier.member_id == m.member_id))).scalar()
            return await current_tier_policy(self.db), kept

        policy, kept = self.run(read())
        if not policy.has_multipliers:
            return base, 0
        extra = extra_points(base, policy.tiers[0].multiplier_percent if kept is None else kept)
        return (base, extra) if policy.bonus_funder == "NETWORK" else (base + extra, 0)

    def bonus_of(self, earn_entry_id: int) -> int:
        async def read() -> int:
            async with self.db.read() as conn:
                return int((await conn.execute(select(Entry.id).where(
                    Entry.merchant_id.is_(None), Entry.idempotency_key == attached_bonus_key(earn_entry_id)))
                ).scalar_one())

        return self.run(read())

    def after_earn_model(self, result: Any, m: MemberModel, merchant_id: int, amount: int) -> None:
        if merchant_id != self.merchants[0] or amount < MIN_PURCHASE:
            return
        if self.hook_lost:
            self.lost_earns.append((result, m, merchant_id, amount))
            return
        self.stamped.add(result.entry.id)
        progress = self.stamps[m.member_id]
        progress[0] += 1
        if progress[0] >= (progress[1] + 1) * REQUIRED:
            progress[1] += 1
            (new,) = [v for v in self.run(self._new_stamp_vouchers())
                      if v.member_id == m.member_id and v.card_number == progress[1]]
            self.vouchers[new.id] = VoucherModel(m.member_id, self.merchants[0], "ISSUED",
                                                 self.clock.now + dt.timedelta(days=VALID_DAYS), None, progress[1])

    def after_reverse_model(self, entry_id: int, entry: EntryModel, result: Any) -> None:
        if self.hook_lost:
            self.lost_reversals.append((entry_id, entry, result))
            return
        if entry.kind == "REDEEM":  # the reward's merchant refunded a claim: its unused voucher is void
            for voucher in self.vouchers.values():
                if voucher.redeem_entry_id == entry_id and voucher.status == "ISSUED":
                    voucher.status = "CANCELLED"
                    self.stock += 1
            return
        if entry.kind != "EARN" or entry_id not in self.stamped:
            return
        progress = self.stamps[entry.member_id]
        progress[0] -= 1
        if progress[0] < progress[1] * REQUIRED:
            latest = max(v for v, m in self.vouchers.items()
                         if m.member == entry.member_id and m.card_number == progress[1])
            if self.vouchers[latest].status == "ISSUED":
                self.vouchers[latest].status = "CANCELLED"
                progress[1] -= 1

    async def _new_stamp_vouchers(self) -> list[Any]:
        async with self.db.read() as conn:
            return list(await conn.execute(select(Voucher).where(Voucher.stamp_card_id.is_not(None),
                                                                 Voucher.id.not_in(list(self.vouchers) or [0]))))

    # ------------------------------------------------------------ the programs' rules

    @rule(who=st.integers(0, 1), by_member=st.booleans())
    def claim(self, who: int, by_member: bool) -> None:
        m = self.members[who]
        caller = {"member_id": m.member_id} if by_member else {"merchant_id": self.merchants[1]}
        result = self.call(vouchers.claim_reward(self.ledger, reward_id=self.reward.id, loyalty_id=m.loyalty_id,
                                                 idempotency_key=self.key(), now=self.clock.now, **caller))
        expected = ("OUT_OF_STOCK" if self.stock == 0 else self.spend_error(m, COST))
        if isinstance(result, str):
            assert result == expected
            return
        assert expected is None
        self.stock -= 1
        m.balance -= COST
        redeem_id = result.voucher.redeem_entry_id
        self.entries[redeem_id] = EntryModel("REDEEM", self.merchants[1], m.member_id, -COST,
                                             honored=self.take(m.member_id, COST))
        self.vouchers[result.voucher.id] = VoucherModel(m.member_id, self.merchants[1], "ISSUED",
                                                        self.clock.now + dt.timedelta(days=VALID_DAYS), redeem_id)

    @precondition(lambda self: any(v.status == "ISSUED" for v in self.vouchers.values()))
    @rule(data=st.data())
    def use(self, data: st.DataObject) -> None:
        voucher_id = data.draw(st.sampled_from(sorted(v for v, m in self.vouchers.items() if m.status == "ISSUED")))
        model = self.vouchers[voucher_id]

        async def go() -> Any:
            async with self.db.read() as conn:
                code = (await conn.execute(select(Voucher.code).where(Voucher.id == voucher_id))).scalar_one()
            return await vouchers.use_voucher(self.ledger, merchant_id=model.merchant, code=code,
                                              idempotency_key=self.key(), now=self.clock.now)

        result = self.call(go())
        if model.expires_at <= self.clock.now:
            assert result == "VOUCHER_EXPIRED"
        else:
            assert not isinstance(result, str), result
            model.status = "USED"

    @rule()
    def expire_vouchers(self) -> None:
        expired = self.run(vouchers.expire_vouchers(self.ledger, now=self.clock.now))
        due = [m for m in self.vouchers.values() if m.status == "ISSUED" and m.expires_at <= self.clock.now]
        assert expired == len(due)
        for voucher in due:
            voucher.status = "EXPIRED"
            if voucher.redeem_entry_id is not None:  # a claim: the stock and the points come back
                self.stock += 1
                redemption = self.entries[voucher.redeem_entry_id]
                if not redemption.reversed:  # unless the merchant refunded it (a lost hook left the voucher)
                    self.restore(self.member(voucher.member), redemption)
                    redemption.reversed = True

    @rule()
    def crash(self) -> None:
        self.crash_next = True

    @rule()
    def catch_up(self) -> None:
        """The worker's programs job: every lost stamp, then every lost refund's undoing, in entry order."""
        done = self.run(catchup.catch_up(self.ledger, now=self.clock.now + dt.timedelta(seconds=1),
                                         look_back_s=20 * 366 * 86_400, grace_s=0))
        self.hook_lost = False
        earns = sorted((e for e in self.lost_earns if not self.entries[e[0].entry.id].reversed),
                       key=lambda e: e[0].entry.id)
        for earn in earns:
            self.after_earn_model(*earn)
        undone = 0
        for entry_id, entry, result in sorted(self.lost_reversals, key=lambda r: r[0]):
            undone += (entry.kind == "EARN" and entry_id in self.stamped) or any(
                v.redeem_entry_id == entry_id and v.status == "ISSUED" for v in self.vouchers.values())
            self.after_reverse_model(entry_id, entry, result)
        assert done == catchup.CatchUp(stamps=len(earns), reversals=undone), (done, earns, self.lost_reversals)
        self.lost_earns, self.lost_reversals = [], []

    @rule(funder=st.sampled_from(["MERCHANT", "NETWORK"]), silver=st.sampled_from([20, 300, 3000]),
          percent=st.sampled_from([100, 150, 200]))
    def set_policy(self, funder: str, silver: int, percent: int) -> None:
        self.policies += 1
        self.run(set_tier_policy(self.db, tiers=[{"name": "BASIC", "threshold_points": 0},
                                                 {"name": "SILVER", "threshold_points": silver,
                                                  "multiplier_percent": percent}],
                                 bonus_funder=funder, idempotency_key=f"policy-{self.policies}", now=self.clock.now))
        self.reviewed = (self.clock.now, len(self.entries))

    @rule()
    def review(self) -> None:
        self.run(review_tiers(self.db, now=self.clock.now))
        self.reviewed = (self.clock.now, len(self.entries))

    # ------------------------------------------------------------ the programs' invariants

    @invariant()
    def programs_agree_with_the_model(self) -> None:
        async def read() -> tuple[Any, Any, Any]:
            async with self.db.read() as conn:
                statuses = {r.id: str(r.status) for r in await conn.execute(select(Voucher.id, Voucher.status))}
                stock = (await conn.execute(select(Reward.stock_left).where(Reward.id == self.reward.id))).scalar()
                progress = {r.member_id: [r.total_stamps, r.completed_cards] for r in await conn.execute(
                    select(StampProgress.member_id, StampProgress.total_stamps, StampProgress.completed_cards))}
            return statuses, stock, progress

        statuses, stock, progress = self.run(read())
        assert statuses == {v: m.status for v, m in self.vouchers.items()}
        assert stock == self.stock
        assert progress == {m: p for m, p in self.stamps.items() if m in progress}
        assert all(p == [0, 0] for m, p in self.stamps.items() if m not in progress)

    @invariant()
    def tiers_follow_the_qualifying_points(self) -> None:
        """Each member's qualifying points are its earns in the window, less the reversed; right after a review
        (nothing written since), its kept tier is at least the one they qualify for (higher only in the grace
        after its review date), with that tier's multiplier."""
        now = self.clock.now
        just_reviewed = self.reviewed == (now, len(self.entries))

        async def read() -> tuple[Any, dict[int, int], dict[int, Any]]:
            policy = await current_tier_policy(self.db)
            async with self.db.read() as conn:
                points = await qualifying_points(conn, policy, [m.member_id for m in self.members], now)
                kept = {r.member_id: r for r in await conn.execute(select(MemberTier))}
            return policy, points, kept

        policy, points, kept = self.run(read())
        start = window_start(policy, now)
        for m in self.members:
            expected = sum(e.points for e in self.entries.values() if e.kind == "EARN" and e.member_id == m.member_id
                           and not e.reversed and e.created_at is not None and start <= e.created_at <= now)
            assert points.get(m.member_id, 0) == expected
            if not just_reviewed:
                continue
            state = kept[m.member_id]
            assert state.qualifying_points == expected
            qualified = policy.rank(policy.qualified(expected).name)
            assert policy.rank(state.tier) >= qualified
            if policy.rank(state.tier) > qualified:
                assert now <= state.valid_until + dt.timedelta(days=policy.grace_days)
            assert state.multiplier_percent == policy.tiers[policy.rank(state.tier)].multiplier_percent


ProgramsMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
TestProgramsStateMachine = ProgramsMachine.TestCase
