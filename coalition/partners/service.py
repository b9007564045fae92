"""Onboarding and suspending merchants (admin work, through the ORM)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from coalition.auth.models import Role
from coalition.auth.service import create_api_key
from coalition.db import Database, utcnow
from coalition.errors import InvalidInput, NotFound, check_text
from coalition.partners.models import Merchant, MerchantStatus

MAX_EARN_RATE = 1000


class MerchantNotFound(NotFound):
    code = "MERCHANT_NOT_FOUND"


@dataclass(frozen=True)
class Onboarding:
    merchant: Merchant
    api_key: str  # shown once; only its hash is stored


def check_earn_rate(value: int | None) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EARN_RATE:
        raise InvalidInput(f"earnRatePointsPerUnit must be an integer from 0 to {MAX_EARN_RATE}, got {value!r}",
                           code="INVALID_EARN_RATE", field="earnRatePointsPerUnit")
    return value


async def onboard_merchant(db: Database, *, name: str, category: str | None = None,
                           earn_rate_points_per_unit: int | None = None) -> Onboarding:
    """Create an active merchant and its first API key."""
    clean_name = check_text(name, "name", 120, required=True)
    assert clean_name is not None
    clean_category = check_text(category, "category", 60)
    rate = check_earn_rate(earn_rate_points_per_unit)
    async with db.sessions.begin() as session:
        merchant = Merchant(name=clean_name, category=clean_category, earn_rate_points_per_unit=rate,
                            status=MerchantStatus.ACTIVE, created_at=utcnow())
        session.add(merchant)
        await session.flush()
        key = await create_api_key(session, Role.MERCHANT, merchant_id=merchant.id, label=f"{clean_name} (onboarding)")
    return Onboarding(merchant=merchant, api_key=key)


async def set_merchant_status(db: Database, merchant_id: int, status: MerchantStatus) -> Merchant:
    """Suspend or reactivate a merchant. Setting the status it already has changes nothing."""
    async with db.sessions.begin() as session:
        merchant = (await session.execute(
            select(Merchant).where(Merchant.id == merchant_id).with_for_update()
        )).scalar_one_or_none()
        if merchant is None:
            raise MerchantNotFound(f"no merchant {merchant_id}", field="merchantId")
        if merchant.status != status:
            merchant.status = status
            merchant.suspended_at = utcnow() if status == MerchantStatus.SUSPENDED else None
    return merchant


async def list_merchants(db: Database, *, after_id: int | None, limit: int) -> list[Merchant]:
    """The partner directory, oldest first."""
    query = select(Merchant).order_by(Merchant.id).limit(limit)
    if after_id is not None:
        query = query.where(Merchant.id > after_id)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())
