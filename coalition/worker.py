"""The background worker (``coalition worker``): the ledger's and settlement's periodic jobs.

Each tick: void expired holds, expire lots past their date (and purge refusals kept past
``COALITION_IDEMPOTENCY_RETENTION_S``), close every settlement
period that has ended (per the policy's period and time zone) and is not yet settled, and
run the network analysis when the last run is older than ``analyze_every_s`` (with Redis,
one worker per interval runs it).
A period's run uses the idempotency key ``auto-<period end>``, so two workers, or a
worker and a restarted one, close it once: the second gets the same batch back.
Every job is safe to repeat; a failed job is logged and retried on the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.ledger import refusals
from coalition.ledger.service import Ledger
from coalition.network.jobs import run_analysis
from coalition.network.store import InsightStore
from coalition.settlement.models import SettlementBatch
from coalition.settlement.policy import current_policy, latest_period_end
from coalition.settlement.service import run_settlement

logger = logging.getLogger("coalition.worker")
HOLD_BATCH = 1000


@dataclass
class TickReport:
    holds_released: int = 0
    points_expired: int = 0
    refusals_purged: int = 0
    batch_ids: list[int] = field(default_factory=list)
    analysis_run: int | None = None
    errors: list[str] = field(default_factory=list)


class Worker:
    """One tick at a time (:meth:`tick`), or forever (:meth:`run`). The clock is injectable."""

    def __init__(self, db: Database, settings: Settings, keys: NetworkKeys, *,
                 clock: Callable[[], dt.datetime] = utcnow, settle: bool = True, analyze_every_s: float = 0.0) -> None:
        self.db, self.settings, self.keys, self.clock, self.settle = db, settings, keys, clock, settle
        self.ledger = Ledger(db, settings, clock=clock)
        self.analyze_every_s = analyze_every_s
        self.insights = InsightStore(db, settings.redis_url, settings.insights_cache_s)
        self.analyzed_at: dt.datetime | None = None

    async def aclose(self) -> None:
        await self.insights.aclose()

    async def tick(self) -> TickReport:
        report = TickReport()
        jobs = (("holds", self._release_holds), ("expiry", self._expire), ("settlement", self._settle),
                ("analysis", self._analyze))
        for name, job in jobs:
            if (name == "settlement" and not self.settle) or (name == "analysis" and self.analyze_every_s <= 0):
                continue
            try:
                await job(report)
            except Exception as exc:  # one failing job must not stop the others or the loop
                logger.exception("worker job %s failed", name)
                report.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return report

    async def _release_holds(self, report: TickReport) -> None:
        while True:
            released = await self.ledger.release_expired_holds(limit=HOLD_BATCH)
            report.holds_released += released
            if released < HOLD_BATCH:
                return

    async def _expire(self, report: TickReport) -> None:
        _, points = await self.ledger.expire_lots()
        report.points_expired += points
        # Refusals kept under idempotency keys past the retention period (ledger/refusals.py).
        since = self.clock() - dt.timedelta(seconds=self.settings.idempotency_retention_s)
        report.refusals_purged += await refusals.purge(self.db, older_than=since)

    async def _settle(self, report: TickReport) -> None:
        now = self.clock()
        policy = await current_policy(self.db, self.settings, now)
        due = latest_period_end(policy, now)
        async with self.db.read() as conn:
            last = (await conn.execute(select(SettlementBatch.period_end)
                                       .order_by(SettlementBatch.seq.desc()).limit(1))).scalar_one_or_none()
        if last is not None and last >= due:
            return
        result = await run_settlement(self.db, self.settings, self.keys, period_end=due,
                                      idempotency_key=f"auto-{due.isoformat()}", now=now)
        report.batch_ids.append(result.batch.id)

    async def _analyze(self, report: TickReport) -> None:
        now = self.clock()
        if self.analyzed_at is not None and (now - self.analyzed_at).total_seconds() < self.analyze_every_s:
            return
        self.analyzed_at = now
        slot = int(now.timestamp() // self.analyze_every_s)  # workers agree on the interval they are in
        if not await self.insights.claim(f"analyze:{slot}", self.analyze_every_s):
            return  # another worker runs this interval's analysis
        run = await run_analysis(self.db, self.settings, store=self.insights, keys=self.keys, now=now)
        report.analysis_run = run.run_id

    async def run(self, interval_s: float, stop: asyncio.Event | None = None) -> None:
        """Tick every ``interval_s`` seconds until ``stop`` is set."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            report = await self.tick()
            logger.info("worker tick: %s", report)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
