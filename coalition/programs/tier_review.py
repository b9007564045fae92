"""Tier policy versions, and the review that keeps each member's tier state.

A review reads the members' EARN entries in the qualifying window (one grouped query per
chunk of members), applies :func:`coalition.programs.tiers.evaluate` to each with its kept
state, and upserts ``member_tiers``. It runs after every ``setTierPolicy`` (so a new policy
re-evaluates every member at once), from the worker every ``COALITION_TIER_REVIEW_INTERVAL_S``,
and reads nothing but entries, the policy and the kept state: run twice, it writes the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from coalition.caching import Refreshed
from coalition.db import Database, utcnow
from coalition.errors import check_idempotency_key
from coalition.ledger.idempotency import KeyColumns, insert_once, request_hash
from coalition.ledger.models import Entry, EntryKind
from coalition.members.models import Member
from coalition.programs.tier_models import MemberTier, TierPolicyVersion
from coalition.programs.tiers import (
    DEFAULT_POLICY,
    TierPolicy,
    TierState,
    evaluate,
    policy_from_row,
    validate_tier_policy,
    window_start,
)

REVIEW_CHUNK = 1000
POLICY_KEYS = KeyColumns(TierPolicyVersion, key="idempotency_key", fingerprint="request_hash")


async def tier_policy(conn: AsyncConnection) -> TierPolicy:
    """The version in force (the newest), or the default when none is stored."""
    row = (await conn.execute(select(TierPolicyVersion).order_by(TierPolicyVersion.id.desc()).limit(1))).first()
    return DEFAULT_POLICY if row is None else policy_from_row(row)


async def current_tier_policy(db: Database) -> TierPolicy:
    async with db.read() as conn:
        return await tier_policy(conn)


async def set_tier_policy(db: Database, *, tiers: Any, idempotency_key: str, window: Any = None,
                          window_months: Any = None, grace_days: Any = None, bonus_funder: Any = None,
                          now: dt.datetime | None = None) -> TierPolicy:
    """Append a version, once per key (checked first: nothing is written when a value is refused), then
    review every member. Returns the version written under the key: a retry replays it (the precedence of
    ``coalition/ledger/idempotency.py``: replay, conflict; no merchant writes, nothing is looked up) and
    reviews again, which changes nothing unless a crash lost the first review."""
    now = now or utcnow()
    key = check_idempotency_key(idempotency_key)
    policy = validate_tier_policy(tiers, window=window, window_months=window_months, grace_days=grace_days,
                                  bonus_funder=bonus_funder)
    values = {"tiers": policy.tiers_json(), "window": policy.window, "window_months": policy.window_months,
              "grace_days": policy.grace_days, "bonus_funder": policy.bonus_funder}
    fingerprint = request_hash("setTierPolicy", **values)
    async with db.transaction() as conn:
        written, _ = await insert_once(conn, POLICY_KEYS, {
            **values, "idempotency_key": key, "request_hash": fingerprint, "created_at": now})
    bump_generation()
    await review_tiers(db, now=now)
    return policy_from_row(written)


def _reversed(at: dt.datetime) -> Any:
    reversal = aliased(Entry)
    return exists().where(reversal.reverses_id == Entry.id, reversal.created_at <= at)


async def qualifying_points(conn: AsyncConnection, policy: TierPolicy, member_ids: Collection[int],
                            now: dt.datetime) -> dict[int, int]:
    """Points each member EARNED in the window ending at ``now``, less earns reversed by ``now``."""
    rows = await conn.execute(
        select(Entry.member_id, func.sum(Entry.points))
        .where(Entry.member_id.in_(sorted(member_ids)), Entry.kind == EntryKind.EARN,
               Entry.created_at >= window_start(policy, now), Entry.created_at <= now, ~_reversed(now))
        .group_by(Entry.member_id))
    return {int(member_id): int(points) for member_id, points in rows}


def _state(row: Any) -> TierState:
    return TierState(row.tier, row.qualifying_points, row.since, row.valid_until)


async def kept_states(conn: AsyncConnection, member_ids: Collection[int]) -> dict[int, TierState]:
    rows = await conn.execute(select(MemberTier).where(MemberTier.member_id.in_(sorted(member_ids))))
    return {row.member_id: _state(row) for row in rows}


async def tier_state(db: Database, member_id: int, now: dt.datetime) -> tuple[TierPolicy, TierState]:
    """The member's tier as a review at ``now`` would find it (read only): for ``Member.tierStatus``."""
    async with db.read() as conn:
        policy = await tier_policy(conn)
        kept = (await kept_states(conn, [member_id])).get(member_id)
        points = (await qualifying_points(conn, policy, [member_id], now)).get(member_id, 0)
    return policy, evaluate(policy, kept, points, now)


async def review_tiers(db: Database, *, now: dt.datetime | None = None,
                       member_ids: Collection[int] | None = None) -> int:
    """Re-evaluate members (default: all) and keep their states; returns how many were reviewed."""
    now = now or utcnow()
    reviewed = 0
    after = 0
    while True:
        async with db.transaction() as conn:
            query = select(Member.id).where(Member.id > after).order_by(Member.id).limit(REVIEW_CHUNK)
            if member_ids is not None:
                query = query.where(Member.id.in_(sorted(member_ids)))
            ids = [int(i) for i in (await conn.execute(query)).scalars()]
            if not ids:
                return reviewed
            policy = await tier_policy(conn)
            kept = await kept_states(conn, ids)
            points = await qualifying_points(conn, policy, ids, now)
            rows = []
            for member_id in ids:
                state = evaluate(policy, kept.get(member_id), points.get(member_id, 0), now)
                tier = policy.tiers[policy.rank(state.tier)]
                rows.append({"member_id": member_id, "tier": state.tier, "multiplier_percent": tier.multiplier_percent,
                             "qualifying_points": state.qualifying_points, "since": state.since,
                             "valid_until": state.valid_until, "policy_id": policy.id, "evaluated_at": now})
            make_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            stmt = make_insert(MemberTier)
            await conn.execute(stmt.on_conflict_do_update(index_elements=[MemberTier.member_id], set_={
                name: stmt.excluded[name] for name in ("tier", "multiplier_percent", "qualifying_points", "since",
                                                       "valid_until", "policy_id", "evaluated_at")}), rows)
            reviewed += len(ids)
            after = ids[-1]


_generation = 0


def bump_generation() -> None:
    """A policy or campaign written in this process: its caches read again at once."""
    global _generation
    _generation += 1


def generation() -> int:
    return _generation


class TierPolicyCache:
    """The tier policy in force, re-read at most every ``ttl_s``, one read at a time (the earn path asks
    on every earn: :class:`coalition.caching.Refreshed`)."""

    def __init__(self, db: Database, ttl_s: float = 2.0) -> None:
        self._policy = Refreshed(lambda: current_tier_policy(db), ttl_s, generation)

    async def policy(self) -> TierPolicy:
        return await self._policy.get()


