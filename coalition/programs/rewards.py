"""Rewards a merchant offers for points ("100 points = a free coffee").

A reward has a points cost, optional stock (the vouchers it may still give; NULL: unlimited),
an optional validity window, and how long its vouchers stay valid. Claiming one is in
:mod:`coalition.programs.vouchers`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import Database
from coalition.errors import InvalidInput, check_idempotency_key, check_text
from coalition.ledger import core
from coalition.ledger.core import MAX_POINTS
from coalition.ledger.idempotency import KeyColumns, Outcomes, as_model, find_earlier, insert_once
from coalition.ledger.inputs import check_points
from coalition.programs.errors import RewardNotFound
from coalition.programs.reward_models import Reward

MAX_STOCK = 1_000_000
MAX_VOUCHER_VALID_DAYS = 3650
DEFAULT_VOUCHER_VALID_DAYS = 30
REWARD_KEYS = KeyColumns(Reward, key="idempotency_key", fingerprint="request_hash", scope=("merchant_id",))


def check_count(value: object, field: str, code: str, maximum: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(f"{field} must be an integer from {minimum} to {maximum}, got {value!r}"[:200],
                           code=code, field=field)
    return value


def check_name(name: object) -> str:
    checked = check_text(name if isinstance(name, str) else None, "name", 100, required=True)
    if checked is None or not checked.strip():
        raise InvalidInput("name must be 1 to 100 printable characters", code="INVALID_NAME", field="name")
    return checked.strip()


async def create_reward(
    db: Database, *, merchant_id: int, name: str, points_cost: int, idempotency_key: str, now: dt.datetime,
    description: str | None = None, stock: int | None = None, valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None, voucher_valid_days: int | None = None,
) -> Any:
    """Publish a reward of ``merchant_id``, once per key. Returns the reward row."""
    key = check_idempotency_key(idempotency_key)
    name = check_name(name)
    points_cost = check_points(points_cost, "pointsCost")
    description = check_text(description, "description", 500)
    if stock is not None:
        stock = check_count(stock, "stock", "INVALID_STOCK", MAX_STOCK)
    days = check_count(DEFAULT_VOUCHER_VALID_DAYS if voucher_valid_days is None else voucher_valid_days,
                       "voucherValidDays", "INVALID_VALIDITY", MAX_VOUCHER_VALID_DAYS)
    if valid_until is not None and valid_from is not None and valid_until <= valid_from:
        raise InvalidInput("validUntil must be after validFrom", code="INVALID_VALIDITY", field="validUntil")
    fingerprint = core.request_hash("createReward", name=name, points_cost=points_cost, description=description,
                                    stock=stock, valid_from=valid_from, valid_until=valid_until, days=days)
    assert points_cost <= MAX_POINTS
    async with db.transaction() as conn:
        # The precedence of coalition/ledger/idempotency.py: a retry replays whatever the merchant's
        # status (or the clock) is now; then suspended; then the write's own refusals.
        outcomes = create_outcomes(conn, REWARD_KEYS, merchant_id, key, fingerprint, "publish rewards")
        if (earlier := await outcomes.earlier()) is not None:
            return earlier
        await outcomes.check_merchant()
        if valid_until is not None and valid_until <= now:
            raise InvalidInput("validUntil must be in the future", code="INVALID_VALIDITY", field="validUntil")
        reward, _ = await insert_once(conn, REWARD_KEYS, {
            "merchant_id": merchant_id, "name": name, "description": description, "points_cost": points_cost,
            "stock_total": stock, "stock_left": stock, "valid_from": valid_from, "valid_until": valid_until,
            "voucher_valid_days": days, "active": True, "idempotency_key": key, "request_hash": fingerprint,
            "created_at": now,
        })
    return reward


def create_outcomes(conn: AsyncConnection, keys: KeyColumns[Any], merchant_id: int, key: str, fingerprint: str,
                    action: str) -> Outcomes[Any]:
    """The outcomes before a merchant's definition is created (a reward, a stamp card): the replay of the
    definition stored under the key, or the conflict; then the merchant's suspension."""
    return Outcomes(earlier=lambda: find_earlier(conn, keys, (merchant_id,), key, fingerprint), executor=conn,
                    merchant_id=merchant_id, action=action)


async def reward_by_id(db: Database, reward_id: int) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(*Reward.__table__.c).where(Reward.id == reward_id))).first()


async def own_reward(db: Database, merchant_id: int, reward_id: int, field: str = "rewardId") -> Any:
    """The merchant's own reward; another merchant's answers exactly as a missing one."""
    async with db.read() as conn:
        return await own_reward_in(conn, merchant_id, reward_id, field)


async def own_reward_in(conn: AsyncConnection, merchant_id: int, reward_id: int, field: str = "rewardId") -> Any:
    """:func:`own_reward` in the caller's transaction."""
    row = (await conn.execute(select(*Reward.__table__.c).where(Reward.id == reward_id))).first()
    if row is None or row.merchant_id != merchant_id:
        raise RewardNotFound("this merchant has no such reward: pass the ID of one of its own", field=field)
    return row


async def list_rewards(
    db: Database, *, merchant_id: int | None, before_id: int | None, limit: int,
) -> Sequence[Any]:
    """Rewards newest first, of one merchant or of the whole network (the partner directory's offers)."""
    query = select(*Reward.__table__.c).order_by(Reward.id.desc()).limit(limit)
    if merchant_id is not None:
        query = query.where(Reward.merchant_id == merchant_id)
    if before_id is not None:
        query = query.where(Reward.id < before_id)
    async with db.read() as conn:
        return [as_model(Reward, row) for row in await conn.execute(query)]


def is_active(reward: Any, now: dt.datetime) -> bool:
    return bool(reward.active and (reward.valid_from is None or reward.valid_from <= now)
                and (reward.valid_until is None or now < reward.valid_until)
                and (reward.stock_left is None or reward.stock_left > 0))


async def reward_names(db: Database, reward_ids: Sequence[int]) -> dict[int, str]:
    """Reward id → name, for the ids given (a wallet's vouchers)."""
    if not reward_ids:
        return {}
    async with db.read() as conn:
        rows = await conn.execute(select(Reward.id, Reward.name).where(Reward.id.in_(sorted(set(reward_ids)))))
        return {int(row.id): str(row.name) for row in rows}
