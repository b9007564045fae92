"""Storing analysis results with their computation time, and serving the latest.

A run is a row in ``insight_runs`` (RUNNING → SUCCEEDED or FAILED) and its results are rows
in ``insight_results``, one per scope (see ``coalition.network.models``), written in one
transaction with the run's SUCCEEDED status: readers see a whole run or none of it. A request
reads one row: the scope's payload in the newest SUCCEEDED run.

With Redis (``COALITION_REDIS_URL``) the payloads are also cached there after the commit,
under a key naming the run (``coalition:insights:<run>:<scope>``), and
``coalition:insights:latest`` names the newest run. The run's name includes the time it finished,
in microseconds, so a database restored or truncated (ids restarting) never meets an old key.
Redis is never the only copy: on a miss or a Redis error the database answers.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.functions import max as sql_max

from coalition.availability import Availability, Unavailable
from coalition.db import Change, Database, note_change, utcnow
from coalition.network.loyalty import LoyaltyType
from coalition.network.models import InsightResult, InsightRun, RunStatus

logger = logging.getLogger("coalition.network.store")

NETWORK_SCOPE = "network"
MAP_SCOPES = {"png": "map.png", "svg": "map.svg"}
KEEP_RUNS = 5
STORE_BATCH = 50  # scopes per INSERT statement
LATEST_KEY = "coalition:insights:latest"
LAZY_PREFIXES = ("rfm:",)


def merchant_scope(merchant_id: int) -> str:
    return f"merchant:{merchant_id}"


def rfm_scope(merchant_id: int) -> str:
    """A merchant's RFM columns (read lazily: see ``LAZY_PREFIXES``)."""
    return f"rfm:{merchant_id}"


@dataclass(frozen=True)
class Stored:
    """One scope's payload from one run, and when that run computed it."""

    run_id: int
    started_at: dt.datetime
    computed_at: dt.datetime
    payload: dict[str, Any]

    def age_s(self, now: dt.datetime | None = None) -> float:
        return max(0.0, ((now or utcnow()) - self.computed_at).total_seconds())


def _run_name(run_id: int, computed_at: dt.datetime) -> str:
    return f"{run_id}-{int(computed_at.timestamp() * 1_000_000)}"


def _given(change: Change) -> Callable[[], Change]:
    return lambda: change


class InsightStore:
    """Reads and writes stored insights; caches them in Redis when a URL is given."""

    def __init__(self, db: Database, redis_url: str | None = None, cache_s: int = 3600, *, timeout_s: float = 2.0,
                 health_check_s: int = 30, availability: Availability | None = None) -> None:
        self.db = db
        self.cache_s = cache_s
        self.redis = redis_asyncio.from_url(
            redis_url, socket_timeout=timeout_s or None, socket_connect_timeout=timeout_s or None,
            health_check_interval=health_check_s,
        ) if redis_url else None
        # While Redis is down, reads go straight to the database (one try per probe interval),
        # and the outage is logged once.
        self.availability = availability or Availability("redis", probe_interval_s=5.0)

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    # ------------------------------------------------------------ writing

    async def start_run(self, params: dict[str, Any], now: dt.datetime | None = None) -> int:
        async with self.db.transaction() as conn:
            run_id = (await conn.execute(insert(InsightRun).values(
                status=RunStatus.RUNNING, started_at=now or utcnow(), params=params, summary={},
            ).returning(InsightRun.id))).scalar_one()
        return int(run_id)

    async def fail_run(self, run_id: int, error: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(update(InsightRun).where(InsightRun.id == run_id).values(
                status=RunStatus.FAILED, finished_at=utcnow(), error=error[:2000]))

    async def finish_run(
        self, run_id: int, payloads: dict[str, dict[str, Any]], blobs: dict[str, bytes], summary: dict[str, Any],
        changes: Sequence[Change] = (),
    ) -> Stored:
        """Store every scope's results and mark the run SUCCEEDED, in one transaction; then cache.

        ``changes`` (the run's new fraud alerts: ``network.alerts``) go to the webhooks outbox in that transaction."""
        finished = utcnow()
        rows: list[dict[str, Any]] = [{"run_id": run_id, "scope": s, "payload": p, "data": None}
                                      for s, p in payloads.items()]
        rows += [{"run_id": run_id, "scope": s, "payload": None, "data": b} for s, b in blobs.items()]
        async with self.db.transaction() as conn:
            started_at = (await conn.execute(
                update(InsightRun).where(InsightRun.id == run_id)
                .values(status=RunStatus.SUCCEEDED, finished_at=finished, summary=summary)
                .returning(InsightRun.started_at)
            )).scalar_one()
            # Few rows per statement: a merchant's RFM scope holds a row per customer, and every
            # row of a statement is serialised at once (500 of them held ~half a GB of JSON at 1M members).
            for start in range(0, len(rows), STORE_BATCH):
                await conn.execute(insert(InsightResult), rows[start:start + STORE_BATCH])
            # Keep the last few runs: enough to compare, not a growing table.
            old = select(InsightRun.id).order_by(InsightRun.id.desc()).offset(KEEP_RUNS).limit(1).scalar_subquery()
            await conn.execute(delete(InsightResult).where(InsightResult.run_id <= old))
            await conn.execute(delete(InsightRun).where(InsightRun.id <= old))
            for change in changes:
                note_change(_given(change))
        await self._cache_run(run_id, started_at, finished, payloads)
        return Stored(run_id, started_at, finished, payloads.get(NETWORK_SCOPE, {}))

    async def _cache_run(self, run_id: int, started_at: dt.datetime, finished: dt.datetime,
                         payloads: dict[str, dict[str, Any]]) -> None:
        if self.redis is None:
            return
        name = _run_name(run_id, finished)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for scope, payload in payloads.items():
                    if scope.startswith(LAZY_PREFIXES):
                        continue  # large and seldom read: cached when first asked for
                    pipe.set(f"coalition:insights:{name}:{scope}",
                             _dump(Stored(run_id, started_at, finished, payload)), ex=self.cache_s)
                pipe.set(LATEST_KEY, name, ex=self.cache_s)
                await pipe.execute()
        except RedisError as exc:
            logger.warning("caching insights of run %s in Redis failed (the database has them): %r", run_id, exc)

    # ------------------------------------------------------------ reading

    async def latest(self, scope: str) -> Stored | None:
        """The scope's payload from the newest successful run; None before the first run."""
        cached = await self._cached(scope)
        if cached is not None:
            return cached
        newest = select(sql_max(InsightRun.id)).where(InsightRun.status == RunStatus.SUCCEEDED).scalar_subquery()
        async with self.db.read() as conn:
            row = (await conn.execute(
                select(InsightRun.id, InsightRun.started_at, InsightRun.finished_at, InsightResult.payload)
                .select_from(InsightRun)
                .outerjoin(InsightResult, (InsightResult.run_id == InsightRun.id) & (InsightResult.scope == scope))
                .where(InsightRun.id == newest)
            )).first()
        if row is None:
            return None
        stored = Stored(row.id, row.started_at, row.finished_at, row.payload or {})
        if row.payload is not None:
            await self._fill(scope, stored)
        return stored

    async def latest_blob(self, scope: str) -> tuple[Stored, bytes] | None:
        """A binary result (the network map) of the newest successful run that made one."""
        async with self.db.read() as conn:
            row = (await conn.execute(
                select(InsightRun.id, InsightRun.started_at, InsightRun.finished_at, InsightResult.data)
                .join(InsightResult, InsightResult.run_id == InsightRun.id)
                .where(InsightRun.status == RunStatus.SUCCEEDED, InsightResult.scope == scope,
                       InsightResult.data.is_not(None))
                .order_by(InsightRun.id.desc()).limit(1)
            )).first()
        if row is None:
            return None
        return Stored(row.id, row.started_at, row.finished_at, {}), bytes(row.data)

    async def run_result(self, run_id: int, scope: str) -> tuple[dict[str, Any] | None, bytes | None] | None:
        """One run's stored scope as ``(payload, data)``; None when the run has no such scope."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(InsightResult.payload, InsightResult.data).where(
                InsightResult.run_id == run_id, InsightResult.scope == scope))).first()
        return None if row is None else (row.payload, None if row.data is None else bytes(row.data))

    async def add_blob(self, run_id: int, scope: str, data: bytes) -> bool:
        """Keep ``data`` with a finished run (a map drawn later in another language); dropped with the run.

        False when the scope is there already (another process drew it meanwhile: the unique index
        keeps one) or the run is gone (the newest runs are kept, ``KEEP_RUNS``)."""
        try:
            async with self.db.transaction() as conn:
                await conn.execute(insert(InsightResult).values(run_id=run_id, scope=scope, payload=None, data=data))
        except IntegrityError:
            return False
        return True

    async def claim(self, job: str, seconds: float) -> bool:
        """Take a job for ``seconds`` across processes (Redis ``SET NX``); always true without Redis."""
        if self.redis is None:
            return True
        try:
            return bool(await self.redis.set(f"coalition:jobs:{job}", "1", nx=True, ex=max(1, int(seconds * 0.9))))
        except RedisError as exc:
            logger.warning("could not coordinate job %s through Redis, running it here: %r", job, exc)
            return True

    async def member_rfm(self, merchant_id: int, member_id: int) -> list[Any] | None:
        """``[r, f, m, recency_s, purchases, spent_minor, segment]`` of a member at a merchant, if they bought there."""
        stored = await self.latest(rfm_scope(merchant_id))
        if stored is None:
            return None
        columns = stored.payload
        members = columns.get("member_ids", [])
        i = bisect.bisect_left(members, member_id)
        if i == len(members) or members[i] != member_id:
            return None
        return [columns["r"][i], columns["f"][i], columns["m"][i], columns["recency_s"][i],
                columns["frequency"][i], columns["monetary_minor"][i], LoyaltyType(columns["type"][i]).name]

    async def view(self, merchant_id: int | None) -> Stored | None:
        """The network's scope (``merchant_id`` None) or one merchant's, from the newest run."""
        return await self.latest(NETWORK_SCOPE if merchant_id is None else merchant_scope(merchant_id))

    async def runs(self, limit: int = 10) -> list[InsightRun]:
        async with self.db.session() as session:
            return list((await session.execute(
                select(InsightRun).order_by(InsightRun.id.desc()).limit(limit))).scalars())

    async def _cached(self, scope: str) -> Stored | None:
        if self.redis is None:
            return None
        try:
            self.availability.check()
            name = await self.redis.get(LATEST_KEY)
            if name is None:
                self.availability.succeeded()
                return None
            name = name.decode() if isinstance(name, bytes) else name
            raw = await self.redis.get(f"coalition:insights:{name}:{scope}")
        except Unavailable:
            return None
        except RedisError as exc:
            self.availability.failed(exc)  # logged once per outage; the database answers meanwhile
            return None
        self.availability.succeeded()
        return None if raw is None else _load(raw)

    async def _fill(self, scope: str, stored: Stored) -> None:
        if self.redis is None or not self.availability.available:
            return
        name = _run_name(stored.run_id, stored.computed_at)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(f"coalition:insights:{name}:{scope}", _dump(stored), ex=self.cache_s)
                # Only claim "latest" when no newer run got there first.
                pipe.set(LATEST_KEY, name, ex=self.cache_s, nx=True)
                await pipe.execute()
        except RedisError as exc:
            self.availability.failed(exc)


def _dump(stored: Stored) -> str:
    return json.dumps({"run_id": stored.run_id, "started_at": stored.started_at.isoformat(),
                       "computed_at": stored.computed_at.isoformat(), "payload": stored.payload},
                      separators=(",", ":"))


def _load(raw: bytes | str) -> Stored:
    data = json.loads(raw)
    return Stored(int(data["run_id"]), dt.datetime.fromisoformat(data["started_at"]),
                  dt.datetime.fromisoformat(data["computed_at"]), data["payload"])
