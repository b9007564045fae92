"""The one hypothesis state machine over the ledger, against a plain Python model (not a test module).

Every rule runs one ledger operation and applies the same operation to the model: each
member's balance, held and owed points, every lot's remaining points (consumed soonest
expiry first), every hold and what it reserved from which lot. After each step the
database must agree with the model and ``ledger_violations`` must find nothing.

The ledger's tests run it as it is (tests/ledger/test_ledger_state_machine.py); the programs'
tests extend it (tests/programs/test_programs_state_machine.py) with stamp cards, vouchers and
tiers through the hooks below (``make_ledger``, ``earn_call``, ``reverse_call``, ``earn_split``,
``after_earn_model``, ``after_reverse_model``), so both check the same model of points.

Each test case gets its own event loop and SQLite file (no async fixtures: hypothesis
runs many cases inside one test function).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select

from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.errors import DomainError
from coalition.ledger.invariants import ledger_violations
from coalition.ledger.models import Hold, Lot
from coalition.ledger.service import Ledger
from coalition.members.models import Member
from coalition.members.service import enroll_member
from coalition.models import Base
from coalition.partners.service import onboard_merchant

T = TypeVar("T")
RATES = (1, 3)  # earn rates of the two merchants
START = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class MemberModel:
    member_id: int
    loyalty_id: str
    balance: int = 0
    held: int = 0
    owed: int = 0


@dataclass
class LotModel:
    member_id: int
    remaining: int
    expires_at: dt.datetime
    reversed: bool = False
    expired: int = 0


@dataclass
class HoldModel:
    member_id: int
    merchant_id: int
    points: int
    expires_at: dt.datetime
    slices: list[tuple[int, int]]  # (lot key, points) in the order they were taken
    status: str = "AUTHORIZED"


@dataclass
class EntryModel:
    kind: str
    merchant_id: int
    member_id: int
    points: int = 0
    lot: int | None = None  # EARN: its lot's key (the earn's entry id), None when all went to debt
    bonus: int | None = None  # EARN: the entry id of the bonus attached to it (the network's tier points)
    bonus_points: int = 0
    bonus_lot: int | None = None  # the bonus's lot (its entry id), None when all went to debt
    created_at: dt.datetime | None = None
    honored: list[tuple[int, int]] = field(default_factory=list)  # REDEEM / CAPTURE
    reversed: bool = False


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="coalition-ledger-sm-"))
        self.loop = asyncio.new_event_loop()
        self.settings = load_settings({
            "COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{self.tmp / 'ledger.db'}",
            "COALITION_SECRET_KEY": "test-secret-key",
            # The model is balances, lots and holds; the allowance without proof of presence has its own
            # tests (test_ledger_trust.py), so it is out of the way here.
            "COALITION_REDEEM_WITHOUT_PROOF_POINTS": str(2**31 - 1),
            "COALITION_PROGRAMS_CACHE_S": "0",
        })
        self.db = Database(self.settings.database_url, pool_size=2)
        self.clock = Clock()
        self.ledger = self.make_ledger()
        self.members: list[MemberModel] = []
        self.merchants: list[int] = []
        self.lots: dict[int, LotModel] = {}
        self.holds: dict[int, HoldModel] = {}
        self.entries: dict[int, EntryModel] = {}
        self.keys = 0
        self.run(self.setup())

    # ------------------------------------------------------------ plumbing

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    async def setup(self) -> None:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        for i, rate in enumerate(RATES):
            onboarding = await onboard_merchant(self.db, name=f"M{i}", earn_rate_points_per_unit=rate)
            self.merchants.append(onboarding.merchant.id)
        keys = NetworkKeys.from_settings(self.settings)
        for i in range(2):
            enrolled = await enroll_member(self.db, keys, merchant_id=self.merchants[0], idempotency_key=f"m{i}")
            self.members.append(MemberModel(enrolled.member.id, enrolled.member.loyalty_id))

    # ------------------------------------------------------------ hooks for an extended machine

    def make_ledger(self) -> Ledger:
        return Ledger(self.db, self.settings, clock=self.clock)

    async def earn_call(self, merchant_id: int, loyalty_id: str, amount: int, key: str) -> Any:
        return await self.ledger.earn(merchant_id=merchant_id, loyalty_id=loyalty_id, purchase_amount_minor=amount,
                                      idempotency_key=key)

    async def reverse_call(self, merchant_id: int, entry_id: int, key: str) -> Any:
        return await self.ledger.reverse(merchant_id=merchant_id, transaction_id=entry_id, idempotency_key=key)

    def earn_split(self, m: MemberModel, merchant_id: int, base: int) -> tuple[int, int]:
        """An earn's own points and the points of a bonus attached to it, for ``base`` points at the rate."""
        return base, 0

    def bonus_of(self, earn_entry_id: int) -> int:
        """The entry id of the bonus attached to an earn (an extended machine reads it)."""
        raise AssertionError("the plain ledger attaches no bonus to an earn")

    def after_earn_model(self, result: Any, m: MemberModel, merchant_id: int, amount: int) -> None:
        """What else the model does after an earn (programs: stamps)."""

    def after_reverse_model(self, entry_id: int, entry: EntryModel, result: Any) -> None:
        """What else the model does after a reversal (programs: stamps, vouchers)."""

    # ------------------------------------------------------------ model steps shared by the rules

    def credit(self, m: MemberModel, points: int, lot_key: int) -> int | None:
        """Points in: they repay the member's debt first, the rest is a lot; its key, or None."""
        repaid = min(m.owed, points)
        m.owed -= repaid
        m.balance += points - repaid
        if points - repaid:
            self.lots[lot_key] = LotModel(m.member_id, points - repaid,
                                          self.clock.now + dt.timedelta(days=self.settings.points_expiry_days))
            return lot_key
        return None

    def held_from(self, lot_key: int | None) -> int:
        return sum(pts for hold in self.holds.values() if hold.status == "AUTHORIZED"
                   for k, pts in hold.slices if k == lot_key) if lot_key is not None else 0

    def take_back(self, m: MemberModel, lot_key: int | None, points: int) -> None:
        """An issue reversed: what is left of its lot goes, the rest (but expired points) becomes debt."""
        lot = self.lots.get(lot_key) if lot_key is not None else None
        left = lot.remaining if lot is not None else 0
        expired = lot.expired if lot is not None else 0
        if lot is not None:
            lot.remaining = 0
            lot.reversed = True
        m.balance -= left
        m.owed += points - expired - left  # expired points stay breakage, never debt

    def restore(self, m: MemberModel, entry: EntryModel) -> None:
        """A redemption reversed: its points back to their lots, or to the debt where a lot was reversed."""
        owed_left = m.owed
        total = 0
        for k, pts in entry.honored:
            repay = min(owed_left, pts) if self.lots[k].reversed else 0
            owed_left -= repay
            self.lots[k].remaining += pts - repay
            total += pts
        repaid = m.owed - owed_left
        m.owed -= repaid
        m.balance += total - repaid

    def teardown(self) -> None:
        try:
            self.run(self.db.dispose())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def call(self, coro: Awaitable[T]) -> T | str:
        """The result, or the error code the ledger refused with."""
        name = getattr(coro, "__name__", "call")
        try:
            result = self.run(coro)
        except DomainError as exc:
            event(f"{name}: {exc.code}")
            return exc.code
        event(f"{name}: OK")
        return result

    def member(self, member_id: int) -> MemberModel:
        return next(m for m in self.members if m.member_id == member_id)

    def open_lots(self, member_id: int) -> list[tuple[int, LotModel]]:
        lots = [(k, lot) for k, lot in self.lots.items() if lot.member_id == member_id and lot.remaining > 0]
        return sorted(lots, key=lambda item: (item[1].expires_at, item[0]))

    def take(self, member_id: int, points: int) -> list[tuple[int, int]]:
        slices = []
        left = points
        for k, lot in self.open_lots(member_id):
            x = min(lot.remaining, left)
            lot.remaining -= x
            slices.append((k, x))
            left -= x
            if not left:
                break
        assert left == 0, "model: balance and lots disagree"
        return slices

    def spend_error(self, m: MemberModel, points: int) -> str | None:
        if m.owed:
            return "MEMBER_OWES_POINTS"
        if m.balance < points:
            return "INSUFFICIENT_POINTS"
        return None

    def release(self, hold_id: int, captured: int, status: str) -> list[tuple[int, int]]:
        """Close a hold: the first ``captured`` held points are honored, the rest go back."""
        hold = self.holds[hold_id]
        honored: list[tuple[int, int]] = []
        left = captured
        for k, pts in hold.slices:
            x = min(pts, left)
            left -= x
            if x:
                honored.append((k, x))
            self.lots[k].remaining += pts - x
        m = self.member(hold.member_id)
        m.held -= hold.points
        m.balance += hold.points - captured
        hold.status = status
        return honored

    def release_expired(self, member_id: int | None = None) -> int:
        expired = [h for h, hold in sorted(self.holds.items()) if hold.status == "AUTHORIZED"
                   and hold.expires_at <= self.clock.now and member_id in (None, hold.member_id)]
        for hold_id in expired:
            self.release(hold_id, 0, "EXPIRED")
        return len(expired)

    # ------------------------------------------------------------ rules

    @initialize(amounts=st.tuples(st.integers(5_000, 30_000), st.integers(0, 10_000)))
    def start_with_points(self, amounts: tuple[int, int]) -> None:
        for who, amount in enumerate(amounts):
            if amount:
                self.earn(who, who, amount)

    @rule(who=st.integers(0, 1), where=st.integers(0, 1),
          amount=st.one_of(st.integers(1, 120), *[st.integers(1_000, 20_000)] * 3))
    def earn(self, who: int, where: int, amount: int) -> None:
        m, merchant = self.members[who], self.merchants[where]
        base = amount * RATES[where] // 10**self.settings.currency_exponent
        points, bonus_points = self.earn_split(m, merchant, base) if base else (0, 0)
        result = self.call(self.earn_call(merchant, m.loyalty_id, amount, self.key()))
        if base == 0:
            assert result == "PURCHASE_TOO_SMALL"
            return
        assert not isinstance(result, str), result
        assert result.entry.points == points
        entry = EntryModel("EARN", merchant, m.member_id, points, lot=self.credit(m, points, result.entry.id),
                           created_at=self.clock.now)
        if bonus_points:
            entry.bonus, entry.bonus_points = self.bonus_of(result.entry.id), bonus_points
            entry.bonus_lot = self.credit(m, bonus_points, entry.bonus)
        self.entries[result.entry.id] = entry
        self.after_earn_model(result, m, merchant, amount)

    @rule(who=st.integers(0, 1), where=st.integers(0, 1), points=st.integers(1, 80))
    def redeem(self, who: int, where: int, points: int) -> None:
        m, merchant = self.members[who], self.merchants[where]
        expected_error = self.spend_error(m, points)
        result = self.call(self.ledger.redeem(merchant_id=merchant, loyalty_id=m.loyalty_id, points=points,
                                              idempotency_key=self.key()))
        if expected_error:
            assert result == expected_error
            return
        assert not isinstance(result, str), result
        m.balance -= points
        self.entries[result.entry.id] = EntryModel("REDEEM", merchant, m.member_id, -points,
                                                   honored=self.take(m.member_id, points))

    @rule(who=st.integers(0, 1), where=st.integers(0, 1), points=st.integers(1, 80),
          expires_in_s=st.sampled_from([60, 600, 3600]))
    def authorize(self, who: int, where: int, points: int, expires_in_s: int) -> None:
        m, merchant = self.members[who], self.merchants[where]
        expected_error = self.spend_error(m, points)
        result = self.call(self.ledger.authorize(merchant_id=merchant, loyalty_id=m.loyalty_id, points=points,
                                                 idempotency_key=self.key(), expires_in_s=expires_in_s))
        if expected_error:
            assert result == expected_error
            return
        assert not isinstance(result, str), result
        m.balance -= points
        m.held += points
        self.holds[result.entry.id] = HoldModel(m.member_id, merchant, points,
                                                self.clock.now + dt.timedelta(seconds=expires_in_s),
                                                self.take(m.member_id, points))
        self.entries[result.entry.id] = EntryModel("HOLD", merchant, m.member_id, -points)

    def close(self, data: st.DataObject, *, capture: bool) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.holds)), label="hold")
        hold = self.holds[hold_id]
        points = data.draw(st.one_of(st.none(), st.integers(1, hold.points + 3)), label="points") if capture \
            else None
        operation = self.ledger.capture(merchant_id=hold.merchant_id, hold_id=hold_id, idempotency_key=self.key(),
                                        points=points) if capture else self.ledger.void(
            merchant_id=hold.merchant_id, hold_id=hold_id, idempotency_key=self.key())
        result = self.call(operation)
        captured = (hold.points if points is None else points) if capture else 0
        if captured > hold.points:
            assert result == "CAPTURE_EXCEEDS_HOLD"
        elif hold.status != "AUTHORIZED":
            assert result == "HOLD_ALREADY_CLOSED"
        elif hold.expires_at <= self.clock.now:
            assert result == "HOLD_EXPIRED"
            self.release_expired(hold.member_id)
        else:
            assert not isinstance(result, str), result
            honored = self.release(hold_id, captured, "CAPTURED" if capture else "VOIDED")
            kind = "CAPTURE" if capture else "VOID"
            self.entries[result.entry.id] = EntryModel(kind, hold.merchant_id, hold.member_id,
                                                       hold.points - captured, honored=honored)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        self.close(data, capture=True)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        self.close(data, capture=False)

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        entry_id = data.draw(st.sampled_from(sorted(self.entries)), label="entry")
        entry = self.entries[entry_id]
        m = self.member(entry.member_id)
        result = self.call(self.reverse_call(entry.merchant_id, entry_id, self.key()))
        if entry.kind not in ("EARN", "REDEEM", "CAPTURE"):
            assert result == "NOT_REVERSIBLE"
            return
        if entry.reversed:
            assert result == "ALREADY_REVERSED"
            return
        if entry.kind == "EARN":
            if self.held_from(entry.lot) or self.held_from(entry.bonus_lot):
                assert result == "POINTS_HELD"
                return
            assert not isinstance(result, str), result
            self.take_back(m, entry.lot, entry.points)
            if entry.bonus is not None:  # a bonus attached to the earn goes with it, whoever funds it
                self.take_back(m, entry.bonus_lot, entry.bonus_points)
        else:
            assert not isinstance(result, str), result
            self.restore(m, entry)
        entry.reversed = True
        self.entries[result.entry.id] = EntryModel("REVERSAL", entry.merchant_id, entry.member_id)
        self.after_reverse_model(entry_id, entry, result)

    @rule(seconds=st.sampled_from([30, 600, 3600, 86_400 * 30, 86_400 * 200]))
    def advance(self, seconds: int) -> None:
        self.clock.now += dt.timedelta(seconds=seconds)

    @rule()
    def expire(self) -> None:
        touched: set[int] = set()
        total = 0
        for lot in self.lots.values():
            if lot.remaining > 0 and lot.expires_at <= self.clock.now:
                touched.add(lot.member_id)
                total += lot.remaining
                self.member(lot.member_id).balance -= lot.remaining
                lot.expired += lot.remaining
                lot.remaining = 0
        assert self.run(self.ledger.expire_lots()) == (len(touched), total)

    @rule()
    def release_holds(self) -> None:
        expected = self.release_expired()
        assert self.run(self.ledger.release_expired_holds()) == expected

    # ------------------------------------------------------------ invariants

    @invariant()
    def database_agrees_with_the_model(self) -> None:
        async def read() -> tuple[Any, Any, Any, list[str]]:
            async with self.db.read() as conn:
                members = {r.id: (r.balance, r.held, r.owed) for r in await conn.execute(
                    select(Member.id, Member.balance, Member.held, Member.owed))}
                lots = {r.entry_id: r.remaining for r in await conn.execute(select(Lot.entry_id, Lot.remaining))}
                holds = {r.id: str(r.status) for r in await conn.execute(select(Hold.id, Hold.status))}
                return members, lots, holds, await ledger_violations(conn)

        members, lots, holds, violations = self.run(read())
        assert violations == []
        assert members == {m.member_id: (m.balance, m.held, m.owed) for m in self.members}
        assert lots == {k: lot.remaining for k, lot in self.lots.items()}
        assert holds == {h: hold.status for h, hold in self.holds.items()}

