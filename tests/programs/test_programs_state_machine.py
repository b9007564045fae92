"""A hypothesis state machine over the programs and the ledger: earn (stamping a card), redeem, claim
(at the till or from the wallet), use, expire, reverse (taking a stamp back), against a plain model of
vouchers, stock and stamp cards. After every step the database agrees with the model and
``ledger_violations`` finds nothing (balances, lots, postings and attribution are the ledger's own checks).

The model of points is the database's own balance read before a claim (the ledger's state machine,
tests/ledger/test_ledger_state_machine.py, models balances and lots in full); what this one adds is that
the programs never break them and keep their own counts right.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import DomainError
from coalition.ledger.invariants import ledger_violations
from coalition.ledger.service import Ledger
from coalition.members.models import Member
from coalition.members.service import enroll_member
from coalition.models import Base
from coalition.partners.service import onboard_merchant
from coalition.programs import stamps, vouchers
from coalition.programs.hooks import after_earn, after_reversal
from coalition.programs.reward_models import Reward, StampProgress, Voucher
from coalition.programs.rewards import create_reward

T = TypeVar("T")
START = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
COST, STOCK, VALID_DAYS, REQUIRED, MIN_PURCHASE = 15, 3, 2, 2, 500


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class VoucherModel:
    member: int
    merchant: int
    status: str
    expires_at: dt.datetime
    claimed: bool  # a claim (took stock and points), not a stamp card's
    card_number: int | None = None


@dataclass
class EarnModel:
    member: int
    stamped: bool
    reversed: bool = False


class ProgramsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="coalition-programs-sm-"))
        self.loop = asyncio.new_event_loop()
        self.settings = load_settings({
            "COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{self.tmp / 'programs.db'}",
            "COALITION_SECRET_KEY": "test-secret-key",
            "COALITION_REDEEM_WITHOUT_PROOF_POINTS": str(2**31 - 1),
            "COALITION_PROGRAMS_CACHE_S": "0",
        })
        self.db = Database(self.settings.database_url, pool_size=2)
        self.clock = Clock()
        self.ledger = Ledger(self.db, self.settings, clock=self.clock)
        self.members: list[tuple[int, str]] = []
        self.shops: list[int] = []
        self.vouchers: dict[int, VoucherModel] = {}
        self.earns: dict[int, EarnModel] = {}
        self.stock = STOCK
        self.stamps: dict[int, list[int]] = {}  # member -> [total stamps, completed cards]
        self.n = 0
        self.run(self.setup())

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    async def setup(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        for name in ("Cafe", "Books"):
            self.shops.append((await onboard_merchant(self.db, name=name, earn_rate_points_per_unit=1)).merchant.id)
        keys = NetworkKeys.from_settings(self.settings)
        for i in range(2):
            enrolled = await enroll_member(self.db, keys, merchant_id=self.shops[0], idempotency_key=f"m{i}")
            self.members.append((enrolled.member.id, enrolled.member.loyalty_id))
            self.stamps[enrolled.member.id] = [0, 0]
        self.reward = await create_reward(self.db, merchant_id=self.shops[1], name="Book", points_cost=COST,
                                          stock=STOCK, voucher_valid_days=VALID_DAYS, idempotency_key="r",
                                          now=self.clock.now)
        free = await create_reward(self.db, merchant_id=self.shops[0], name="Coffee", points_cost=1,
                                   voucher_valid_days=VALID_DAYS, idempotency_key="r", now=self.clock.now)
        await stamps.create_stamp_card(self.ledger, merchant_id=self.shops[0], name="Card", stamps_required=REQUIRED,
                                       min_purchase_minor=MIN_PURCHASE, reward_id=free.id, idempotency_key="c",
                                       now=self.clock.now)

    def teardown(self) -> None:
        try:
            self.run(self.db.dispose())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def call(self, coro: Awaitable[T]) -> T | str:
        name = getattr(coro, "__name__", "call")
        try:
            result = self.run(coro)
        except DomainError as exc:
            event(f"{name}: {exc.code}")
            return exc.code
        event(f"{name}: OK")
        return result

    async def _member_row(self, member_id: int) -> Any:
        async with self.db.read() as conn:
            return (await conn.execute(select(Member.balance, Member.owed).where(Member.id == member_id))).one()

    async def _new_stamp_vouchers(self) -> list[Any]:
        async with self.db.read() as conn:
            return list(await conn.execute(select(Voucher).where(Voucher.stamp_card_id.is_not(None),
                                                                 Voucher.id.not_in(list(self.vouchers) or [0]))))

    # ------------------------------------------------------------ rules

    @rule(who=st.integers(0, 1), amount=st.integers(100, 2000), where=st.integers(0, 1))
    def earn(self, who: int, amount: int, where: int) -> None:
        member_id, lid = self.members[who]

        async def go() -> Any:
            result = await self.ledger.earn(merchant_id=self.shops[where], loyalty_id=lid,
                                            purchase_amount_minor=amount, idempotency_key=self.key())
            await after_earn(self.ledger, result)
            return result

        result = self.call(go())
        assert not isinstance(result, str), result
        stamped = where == 0 and amount >= MIN_PURCHASE
        self.earns[result.entry.id] = EarnModel(member_id, stamped)
        if stamped:
            progress = self.stamps[member_id]
            progress[0] += 1
            if progress[0] >= (progress[1] + 1) * REQUIRED:
                progress[1] += 1
                (new,) = self.run(self._new_stamp_vouchers())
                self.vouchers[new.id] = VoucherModel(member_id, self.shops[0], "ISSUED",
                                                     self.clock.now + dt.timedelta(days=VALID_DAYS), False,
                                                     progress[1])

    @rule(who=st.integers(0, 1), points=st.integers(1, 60))
    def redeem(self, who: int, points: int) -> None:
        member_id, lid = self.members[who]
        before = self.run(self._member_row(member_id))
        result = self.call(self.ledger.redeem(merchant_id=self.shops[1], loyalty_id=lid, points=points,
                                              idempotency_key=self.key()))
        expected = "MEMBER_OWES_POINTS" if before.owed else "INSUFFICIENT_POINTS" if before.balance < points else None
        assert (result if isinstance(result, str) else None) == expected

    @rule(who=st.integers(0, 1), by_member=st.booleans())
    def claim(self, who: int, by_member: bool) -> None:
        member_id, lid = self.members[who]
        before = self.run(self._member_row(member_id))
        caller = {"member_id": member_id} if by_member else {"merchant_id": self.shops[1]}
        result = self.call(vouchers.claim_reward(self.ledger, reward_id=self.reward.id, loyalty_id=lid,
                                                 idempotency_key=self.key(), now=self.clock.now, **caller))
        expected = ("OUT_OF_STOCK" if self.stock == 0 else "MEMBER_OWES_POINTS" if before.owed
                    else "INSUFFICIENT_POINTS" if before.balance < COST else None)
        if isinstance(result, str):
            assert result == expected
            return
        assert expected is None
        self.stock -= 1
        self.vouchers[result.voucher.id] = VoucherModel(member_id, self.shops[1], "ISSUED",
                                                        self.clock.now + dt.timedelta(days=VALID_DAYS), True)

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

    @rule(days=st.sampled_from([0.5, 1, 3]))
    def advance(self, days: float) -> None:
        self.clock.now += dt.timedelta(days=days)

    @rule()
    def expire(self) -> None:
        expired = self.run(vouchers.expire_vouchers(self.ledger, now=self.clock.now))
        due = [m for m in self.vouchers.values() if m.status == "ISSUED" and m.expires_at <= self.clock.now]
        assert expired == len(due)
        for m in due:
            m.status = "EXPIRED"
            self.stock += m.claimed

    @precondition(lambda self: any(not e.reversed for e in self.earns.values()))
    @rule(data=st.data())
    def reverse_earn(self, data: st.DataObject) -> None:
        entry_id = data.draw(st.sampled_from(sorted(e for e, m in self.earns.items() if not m.reversed)))
        model = self.earns[entry_id]
        merchant = self.shops[0] if model.stamped else None

        async def go() -> Any:
            async with self.db.read() as conn:
                from coalition.ledger.models import Entry

                owner = (await conn.execute(select(Entry.merchant_id).where(Entry.id == entry_id))).scalar_one()
            result = await self.ledger.reverse(merchant_id=merchant or owner, transaction_id=entry_id,
                                               idempotency_key=self.key())
            await after_reversal(self.ledger, result)
            return result

        result = self.call(go())
        assert not isinstance(result, str), result
        model.reversed = True
        if not model.stamped:
            return
        progress = self.stamps[model.member]
        progress[0] -= 1
        if progress[0] < progress[1] * REQUIRED:
            latest = max(v for v, m in self.vouchers.items()
                         if m.member == model.member and m.card_number == progress[1])
            if self.vouchers[latest].status == "ISSUED":
                self.vouchers[latest].status = "CANCELLED"
                progress[1] -= 1

    # ------------------------------------------------------------ invariants

    @invariant()
    def database_agrees_with_the_model(self) -> None:
        async def read() -> tuple[Any, Any, Any, list[str]]:
            async with self.db.read() as conn:
                statuses = {r.id: str(r.status) for r in await conn.execute(select(Voucher.id, Voucher.status))}
                stock = (await conn.execute(select(Reward.stock_left).where(Reward.id == self.reward.id))).scalar()
                progress = {r.member_id: [r.total_stamps, r.completed_cards] for r in await conn.execute(
                    select(StampProgress.member_id, StampProgress.total_stamps, StampProgress.completed_cards))}
                return statuses, stock, progress, await ledger_violations(conn)

        statuses, stock, progress, violations = self.run(read())
        assert violations == []
        assert statuses == {v: m.status for v, m in self.vouchers.items()}
        assert stock == self.stock
        assert {m: p for m, p in progress.items()} == {m: p for m, p in self.stamps.items() if m in progress}
        assert all(p == [0, 0] for m, p in self.stamps.items() if m not in progress)


ProgramsMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
TestProgramsStateMachine = ProgramsMachine.TestCase
