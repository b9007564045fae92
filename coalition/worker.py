"""The one scheduler for periodic work: ``coalition worker``, or the API process when told.

Every periodic job of the network is in one table (:attr:`Worker.jobs`), each with its interval:

==============  ==========================================  ====================================
job             what it does                                every
==============  ==========================================  ====================================
``holds``       void authorizations past their expiry       ``COALITION_HOLD_SWEEP_INTERVAL_S``
``expiry``      expire lots past their date                 ``--interval-s`` (60 s)
``vouchers``    expire unused vouchers past their date,     ``--interval-s``
                refunding their points (programs/vouchers)
``programs``    apply the stamps, quest visits and refund   ``--interval-s`` (off when
                undoings a crash after an earn's or a       ``COALITION_PROGRAMS_CATCHUP_S``
                reversal's commit lost, within              is 0)
                ``COALITION_PROGRAMS_CATCHUP_S``
                (programs/catchup.py)
``refusals``    purge refusals kept under idempotency keys  ``--interval-s``
                past ``COALITION_IDEMPOTENCY_RETENTION_S``
``tiers``       review every member's status tier           ``COALITION_TIER_REVIEW_INTERVAL_S``
                (programs/tier_review.py)
``settlement``  close every settlement period that has      ``--interval-s`` (``--no-settle``:
                ended (the policy's period and time zone)   never)
``webhooks``    send due webhook deliveries (the outbox)    ``COALITION_WEBHOOK_POLL_S`` (1 s)
``campaigns``   recompute and store the result of every     ``COALITION_CAMPAIGN_RESULTS_``
                started campaign not yet final (30 days     ``INTERVAL_S`` (300 s)
                after its end), read by the console page
                and the API (programs/campaign_snapshots)
``dashboards``  add the ledger's entries to the console     ``--interval-s``
                dashboard's rollup, five minutes after
                they are seen (console/rollup.py)
``analysis``    the network analysis (with Redis, one       ``--analyze-every``, or
                worker per interval runs it)                ``COALITION_ANALYZE_INTERVAL_S`` in
                                                            the API process
==============  ==========================================  ====================================

An interval of 0 turns its job off. Three commands run this table: ``coalition worker`` (every
job), ``coalition analyze --every N`` (the analysis alone) and the API process when
``COALITION_RUN_WORKER=1`` (:func:`start_in_process`); nothing else schedules anything.

A period's run uses the idempotency key ``auto-<period end>``, so two workers, or a
worker and a restarted one, close it once: the second gets the same batch back.
Every job is safe to repeat; a failed job is logged and retried when it is next due. While
the database is down a job's failure is not logged again: its availability tracker logs the
outage once (``coalition.availability``), not every job every few seconds.
The scheduler's database engine applies no command or statement timeout (:func:`scheduler_database`):
settlement runs and the analysis read the whole ledger in statements that may rightly take
longer than an API request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field

from sqlalchemy import select

from coalition.availability import Availability, outage_cause
from coalition.config import Settings
from coalition.console import rollup
from coalition.crypto import NetworkKeys
from coalition.db import Database, Timeouts, utcnow
from coalition.giftcards.service import GiftCards
from coalition.ledger import refusals
from coalition.ledger.service import Ledger
from coalition.network.store import InsightStore
from coalition.programs import campaign_snapshots, catchup, vouchers
from coalition.programs.tier_review import review_tiers
from coalition.settlement.models import SettlementBatch
from coalition.settlement.policy import current_policy, latest_period_end
from coalition.settlement.service import run_settlement
from coalition.webhooks.delivery import Deliverer
from coalition.webhooks.outbox import install

logger = logging.getLogger("coalition.worker")
HOLD_BATCH = 1000
DEFAULT_INTERVAL_S = 60.0  # expiry, refusals and settlement: `coalition worker --interval-s`
MIN_SLEEP_S = 0.01  # never spin: a job slower than its interval runs again after this pause
JOB_NAMES = ("holds", "expiry", "vouchers", "programs", "refusals", "tiers", "settlement", "webhooks", "campaigns",
             "dashboards", "analysis")


@dataclass
class TickReport:
    holds_released: int = 0
    points_expired: int = 0
    refusals_purged: int = 0
    gift_holds_released: int = 0
    gift_cards_expired: int = 0
    tiers_reviewed: int = 0
    vouchers_expired: int = 0
    programs_caught_up: int = 0
    batch_ids: list[int] = field(default_factory=list)
    analysis_run: int | None = None
    webhooks_sent: int = 0
    campaign_results: int = 0
    dashboard_entries: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    """One row of the schedule: ``run`` every ``every_s`` seconds (0: never)."""

    name: str
    every_s: float
    run: Callable[[TickReport], Awaitable[None]]


class Worker:
    """Runs the jobs that are due once (:meth:`tick`), or forever (:meth:`run`). The clock is injectable.

    ``only`` keeps the named jobs (``coalition analyze --every`` keeps ``analysis``);
    ``hold_sweep_s`` defaults to ``COALITION_HOLD_SWEEP_INTERVAL_S``.
    """

    def __init__(self, db: Database, settings: Settings, keys: NetworkKeys, *,
                 clock: Callable[[], dt.datetime] = utcnow, settle: bool = True, analyze_every_s: float = 0.0,
                 every_s: float = DEFAULT_INTERVAL_S, hold_sweep_s: float | None = None,
                 only: Collection[str] | None = None, insights: InsightStore | None = None,
                 webhook_poll_s: float | None = None) -> None:
        unknown = set(only or ()) - set(JOB_NAMES)
        if unknown:
            raise ValueError(f"no such worker job: {', '.join(sorted(unknown))} (the jobs: {', '.join(JOB_NAMES)})")
        self.db, self.settings, self.keys, self.clock = db, settings, keys, clock
        self.analyze_every_s = analyze_every_s
        if db.hooks is None:  # this process's writes (hold expiry) fill the outbox too
            install(db, cache_s=settings.webhook_cache_s)
        self.ledger = Ledger(db, settings, clock=clock)
        self.gift_cards = GiftCards(db, settings, keys, clock=clock)
        self.deliverer = Deliverer(db, settings, keys, clock=clock)
        self.insights = insights or InsightStore(db, settings.redis_url, settings.insights_cache_s)
        hold_every = settings.hold_sweep_interval_s if hold_sweep_s is None else hold_sweep_s
        table = [
            Job("holds", hold_every, self._release_holds),
            Job("expiry", every_s, self._expire),
            Job("vouchers", every_s, self._expire_vouchers),
            Job("programs", every_s if settings.programs_catchup_s > 0 else 0.0, self._catch_up_programs),
            Job("refusals", every_s, self._purge_refusals),
            Job("tiers", settings.tier_review_interval_s, self._review_tiers),
            Job("settlement", every_s if settle else 0.0, self._settle),
            Job("webhooks", settings.webhook_poll_s if webhook_poll_s is None else webhook_poll_s, self._deliver),
            Job("campaigns", settings.campaign_results_interval_s, self._campaign_results),
            Job("dashboards", every_s, self._roll_up_dashboards),
            Job("analysis", analyze_every_s, self._analyze),
        ]
        self.jobs = [job for job in table if job.every_s > 0 and (only is None or job.name in only)]
        self.last_run: dict[str, dt.datetime] = {}
        self._programs_through: dt.datetime | None = None

    async def aclose(self) -> None:
        await self.insights.aclose()
        await self.deliverer.aclose()

    async def _deliver(self, report: TickReport) -> None:
        report.webhooks_sent += (await self.deliverer.run_once()).sent

    def _remaining_s(self, job: Job, now: dt.datetime) -> float:
        """Seconds until ``job`` is due again; 0 for a job that never ran."""
        last = self.last_run.get(job.name)
        return 0.0 if last is None else job.every_s - (now - last).total_seconds()

    def due(self, job: Job, now: dt.datetime) -> bool:
        return self._remaining_s(job, now) <= 0

    def seconds_to_next(self) -> float:
        """How long until the next job is due (by the worker's clock)."""
        now = self.clock()
        return max(MIN_SLEEP_S, min((self._remaining_s(job, now) for job in self.jobs), default=DEFAULT_INTERVAL_S))

    async def tick(self) -> TickReport:
        """Run every job that is due now (each job once on the first tick)."""
        report = TickReport()
        for job in self.jobs:
            now = self.clock()
            if not self.due(job, now):
                continue
            self.last_run[job.name] = now  # a failed job waits its interval too, not a busy loop
            try:
                await job.run(report)
            except Exception as exc:  # one failing job must not stop the others or the loop
                if outage_cause(exc) is None:
                    logger.exception("worker job %s failed; it runs again in %g s", job.name, job.every_s)
                # An outage is logged once, by the availability tracker, not by each job each time.
                report.errors.append(f"{job.name}: {type(exc).__name__}: {exc}")
        return report

    async def _release_holds(self, report: TickReport) -> None:
        while True:
            released = await self.ledger.release_expired_holds(limit=HOLD_BATCH)
            report.holds_released += released
            if released < HOLD_BATCH:
                break
        while True:  # gift card authorizations past their expiry give the money back to the card
            released = await self.gift_cards.release_expired_holds(limit=HOLD_BATCH)
            report.gift_holds_released += released
            if released < HOLD_BATCH:
                return

    async def _expire(self, report: TickReport) -> None:
        _, points = await self.ledger.expire_lots()
        report.points_expired += points
        # Gift cards past their expiry (only where the policy sets one): the balance is the issuer's breakage.
        report.gift_cards_expired += await self.gift_cards.expire_cards()

    async def _expire_vouchers(self, report: TickReport) -> None:
        report.vouchers_expired += await vouchers.expire_vouchers(
            self.ledger, now=self.clock(), refund=self.settings.voucher_expiry_refund)

    async def _catch_up_programs(self, report: TickReport) -> None:
        # The first run looks back COALITION_PROGRAMS_CATCHUP_S; later ones resume where the last one ended.
        done = await catchup.catch_up(self.ledger, now=self.clock(), look_back_s=self.settings.programs_catchup_s,
                                      grace_s=self.settings.programs_catchup_grace_s,
                                      resume_from=self._programs_through)
        self._programs_through = done.through
        report.programs_caught_up += done.total

    async def _purge_refusals(self, report: TickReport) -> None:
        # Refusals kept under idempotency keys past the retention period (ledger/refusals.py).
        since = self.clock() - dt.timedelta(seconds=self.settings.idempotency_retention_s)
        report.refusals_purged += await refusals.purge(self.db, older_than=since)

    async def _review_tiers(self, report: TickReport) -> None:
        # Status tiers kept for the earn multiplier and the grace period (programs/tier_review.py).
        report.tiers_reviewed += await review_tiers(self.db, now=self.clock())

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

    async def _campaign_results(self, report: TickReport) -> None:
        # Each started campaign's result, stored for the console page and the API (programs/campaign_snapshots.py).
        report.campaign_results += await campaign_snapshots.refresh_results(
            self.db, self.clock(), self.settings.campaign_min_group_size)

    async def _roll_up_dashboards(self, report: TickReport) -> None:
        # The entries GRACE old added to the console dashboard's rollup (console/rollup.py).
        report.dashboard_entries += await rollup.roll_up(self.db, self.clock())

    async def _analyze(self, report: TickReport) -> None:
        # Imported here: numpy, scipy and networkx load only in a process that analyses.
        from coalition.network.jobs import run_analysis

        now = self.clock()
        every_s = self.analyze_every_s
        slot = int(now.timestamp() // every_s)  # workers agree on the interval they are in
        if not await self.insights.claim(f"analyze:{slot}", every_s):
            return  # another worker runs this interval's analysis
        run = await run_analysis(self.db, self.settings, store=self.insights, keys=self.keys, now=now)
        logger.info("network analysis run %s stored at %s", run.run_id, run.computed_at)
        report.analysis_run = run.run_id

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run the jobs as they fall due until ``stop`` is set."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            report = await self.tick()
            if report != TickReport():
                logger.info("worker tick: %s", report)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.seconds_to_next())


def scheduler_database(settings: Settings) -> Database:
    """An engine for the scheduler in the API process, without the API's command and statement timeouts.

    The jobs read the whole ledger (settlement, the analysis) in statements that may rightly
    take longer than a request; the connect timeout stays, so an outage is found out as fast.
    """
    return Database(settings.database_url, pool_size=2,
                    timeouts=Timeouts(connect_s=settings.db_connect_timeout_s or None, pool_s=30.0))


@contextlib.asynccontextmanager
async def start_in_process(settings: Settings, keys: NetworkKeys,
                           redis_availability: Availability | None = None) -> AsyncIterator[Worker | None]:
    """The API's lifespan: run the scheduler in this process if ``COALITION_RUN_WORKER=1``, else nothing.

    The analysis runs here only if ``COALITION_ANALYZE_INTERVAL_S`` > 0. Several API processes
    may all run it: each job is safe to repeat, and with Redis one process per interval analyses.
    """
    if not settings.run_worker:
        if settings.analyze_interval_s > 0:
            logger.warning("COALITION_ANALYZE_INTERVAL_S is set but this process runs no scheduler: set "
                           "COALITION_RUN_WORKER=1, or run `coalition worker --analyze-every %g`",
                           settings.analyze_interval_s)
        yield None
        return
    db = scheduler_database(settings)
    insights = InsightStore(db, settings.redis_url, settings.insights_cache_s, timeout_s=settings.redis_timeout_s,
                            availability=redis_availability)
    worker = Worker(db, settings, keys, analyze_every_s=settings.analyze_interval_s, insights=insights)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        task.cancel()  # a job in flight (an analysis) is not waited for at shutdown
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.aclose()
        await db.dispose()
