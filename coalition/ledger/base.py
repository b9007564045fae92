"""State and steps shared by every group of ledger operations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from sqlalchemy import BigInteger, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.errors import DomainError, Refused
from coalition.ledger import core, fastpath, refusals, rules
from coalition.ledger.core import MAX_POINTS, LedgerResult
from coalition.ledger.errors import InsufficientPoints, MemberNotFound
from coalition.ledger.idempotency import Outcomes
from coalition.ledger.models import Lot
from coalition.ledger.programs_hook import EarnPrograms
from coalition.members.models import Member


def balance_limit(member: Member, adding: int) -> Refused:
    return Refused(
        f"member {member.loyalty_id} has {member.balance} points; {adding} more would pass the limit of "
        f"{MAX_POINTS}",
        code="BALANCE_LIMIT_EXCEEDED",
    )


# Built once (see core): credit, and debit with and without moving the points to ``held``.
_credit = (
    update(Member)
    .where(Member.id == bindparam("m_id"), Member.owed == 0,
           rules.within_max_points(Member.balance, bindparam("m_points", type_=BigInteger)))
    .values(balance=Member.balance + bindparam("m_points"),
            lifetime_points=Member.lifetime_points + bindparam("m_points"))
    .returning(Member)
)
# The conditional UPDATE is what keeps a balance from going negative under concurrency.
_debit_where = (Member.id == bindparam("m_id"),
                rules.may_debit(Member.balance, Member.owed, bindparam("m_points", type_=BigInteger)))
_debit = update(Member).where(*_debit_where).values(balance=Member.balance - bindparam("m_points")).returning(Member)
_debit_to_held = (
    update(Member)
    .where(*_debit_where)
    .values(balance=Member.balance - bindparam("m_points"), held=Member.held + bindparam("m_points"))
    .returning(Member)
)
_insert_lot = insert(Lot)


class LedgerBase:
    """Ledger operations over one :class:`Database`. Stateless apart from its settings."""

    def __init__(
        self, db: Database, settings: Settings, clock: Callable[[], dt.datetime] = utcnow, *,
        keys: NetworkKeys | None = None, allowance: Callable[[dt.datetime], Awaitable[int]] | None = None,
        programs: EarnPrograms | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self._keys = keys
        # Points a merchant may take from a member in 24 h without proof of presence (ledger/presence.py):
        # the app passes the network policy's value (settlement.policy.PolicyCache); alone, the setting.
        self.allowance = allowance or self._allowance_from_settings
        # Tiers and campaigns on an earn (ledger/programs_hook.py); None: plain earns only.
        self.programs = programs
        # PostgreSQL runs a plain earn or redeem as one statement (ledger/fastpath.py), batched
        # with the concurrent ones, and falls back to the multi-statement path for anything
        # else; SQLite runs only the latter.
        self.fast_path = not db.is_sqlite
        self.fast = fastpath.FastPath(db, max_in_flight=settings.ledger_batches_in_flight)

    @property
    def keys(self) -> NetworkKeys:
        if self._keys is None:
            self._keys = NetworkKeys.from_settings(self.settings)
        return self._keys

    async def _allowance_from_settings(self, now: dt.datetime) -> int:
        return self.settings.redeem_without_proof_points

    def outcomes(
        self, conn: AsyncConnection, merchant_id: int | None, key: str, fingerprint: str
    ) -> Outcomes[LedgerResult]:
        """The precedence of a ledger write's outcomes (``coalition.ledger.idempotency``): the entry or
        kept refusal under the key, then the merchant's suspension; the write's own come after."""
        return Outcomes(earlier=lambda: core.replay_by_key(conn, merchant_id, key, fingerprint), executor=conn,
                        merchant_id=merchant_id)

    async def _not_inserted(
        self, conn: AsyncConnection, merchant_id: int, key: str, fingerprint: str, loyalty_id: str
    ) -> LedgerResult:
        """Explain an insert by loyalty ID that did nothing: a retry, a suspended merchant, an unknown member."""
        return await self.outcomes(conn, merchant_id, key, fingerprint).explain(
            MemberNotFound(f"no member has loyalty ID {loyalty_id}", field="loyaltyId"))

    async def keeping_refusals(
        self, merchant_id: int, key: str, fingerprint: str, now: dt.datetime, run: Callable[[], Awaitable[LedgerResult]]
    ) -> LedgerResult:
        """Run a write whose input was checked; a refusal it meets is kept under the key (ledger/refusals.py)."""
        try:
            return await run()
        except DomainError as exc:
            if refusals.is_recordable(exc):
                await refusals.record(self.db, merchant_id=merchant_id, key=key, fingerprint=fingerprint, error=exc,
                                      now=now, member_id=getattr(exc, "member_id", None))
            raise

    async def credit(self, conn: AsyncConnection, member_id: int, points: int) -> tuple[Member, int]:
        """Add earned points; while the member owes points they repay the debt first.

        Returns the member after the update and how many points went to the debt.
        """
        params = {"m_id": member_id, "m_points": points}
        row = (await conn.execute(_credit, params)).first()
        if row is not None:
            return core.member_from_row(row), 0
        member = await core.lock_member(conn, member_id)
        repaid = min(member.owed, points)
        if member.balance + points - repaid > MAX_POINTS:
            raise balance_limit(member, points - repaid)
        member = await core.add_to_member(
            conn, member_id, balance=points - repaid, owed=-repaid, lifetime_points=points
        )
        return member, repaid

    async def add_lot(
        self, conn: AsyncConnection, member_id: int, entry_id: int, issuer: int | None, points: int,
        now: dt.datetime,
    ) -> None:
        if points <= 0:
            return
        await conn.execute(_insert_lot, {
            "member_id": member_id, "entry_id": entry_id, "issuer_merchant_id": issuer, "points": points,
            "remaining": points, "expires_at": self.lot_expiry(now),
            "reversed": False, "created_at": now,
        })

    def lot_expiry(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(days=self.settings.points_expiry_days)

    async def debit(self, conn: AsyncConnection, member_id: int, points: int, *, to_held: bool) -> Member:
        """Take spendable points atomically: the conditional UPDATE never lets a balance go negative."""
        stmt = _debit_to_held if to_held else _debit
        row = (await conn.execute(stmt, {"m_id": member_id, "m_points": points})).first()
        if row is not None:
            return core.member_from_row(row)
        member = await core.lock_member(conn, member_id)
        if member.owed:
            raise Refused(
                f"member {member.loyalty_id} owes {member.owed} points from a reversed purchase; "
                "redemptions resume once new purchases have repaid them",
                code="MEMBER_OWES_POINTS",
            )
        raise InsufficientPoints(
            f"member {member.loyalty_id} has {member.balance} points, {points} asked", field="points"
        )
