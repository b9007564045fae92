"""Onboarding and suspending merchants (admin work, through the ORM)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from coalition.auth.models import Role
from coalition.auth.service import create_api_key
from coalition.db import Database, utcnow
from coalition.errors import InvalidInput, NotFound, check_idempotency_key, check_text
from coalition.ledger.idempotency import KeyColumns, find_earlier, request_hash
from coalition.partners.models import Merchant, MerchantStatus

MAX_EARN_RATE = 1000
ONBOARDING_KEYS = KeyColumns(Merchant, key="idempotency_key", fingerprint="request_hash")


class MerchantNotFound(NotFound):
    code = "MERCHANT_NOT_FOUND"


@dataclass(frozen=True)
class Onboarding:
    merchant: Merchant
    api_key: str | None  # shown once; only its hash is stored (None: a replay, see onboard_merchant)
    replayed: bool = False


def check_earn_rate(value: int | None) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EARN_RATE:
        raise InvalidInput(f"earnRatePointsPerUnit must be an integer from 0 to {MAX_EARN_RATE}, got {value!r}",
                           code="INVALID_EARN_RATE", field="earnRatePointsPerUnit")
    return value


async def onboard_merchant(db: Database, *, name: str, category: str | None = None,
                           earn_rate_points_per_unit: int | None = None,
                           idempotency_key: str | None = None) -> Onboarding:
    """Create an active merchant and its first API key.

    With ``idempotency_key`` (optional: one key space for the network), once per key, in the precedence of
    ``coalition/ledger/idempotency.py`` (replay, conflict; no merchant writes, nothing is looked up): a
    retry with the same input answers with the merchant the first call created (``replayed``) and no API
    key: the key was shown once and only its hash is kept; an admin who lost it issues a new one. Other
    input under the key is IDEMPOTENCY_KEY_CONFLICT. Of concurrent calls with one key, one creates.
    """
    clean_name = check_text(name, "name", 120, required=True)
    assert clean_name is not None
    clean_category = check_text(category, "category", 60)
    rate = check_earn_rate(earn_rate_points_per_unit)
    key = None if idempotency_key is None else check_idempotency_key(idempotency_key)
    fingerprint = request_hash("onboardMerchant", name=clean_name, category=clean_category, earn_rate=rate)
    if key is not None:
        async with db.sessions.begin() as session:
            if (earlier := await find_earlier(session, ONBOARDING_KEYS, (), key, fingerprint)) is not None:
                return Onboarding(merchant=earlier, api_key=None, replayed=True)
    try:
        async with db.sessions.begin() as session:
            merchant = Merchant(name=clean_name, category=clean_category, earn_rate_points_per_unit=rate,
                                status=MerchantStatus.ACTIVE, created_at=utcnow(), idempotency_key=key,
                                request_hash=None if key is None else fingerprint)
            session.add(merchant)
            await session.flush()
            api_key = await create_api_key(session, Role.MERCHANT, merchant_id=merchant.id,
                                           label=f"{clean_name} (onboarding)")
    except IntegrityError:  # a concurrent call with the key created the merchant first
        if key is None:
            raise
        async with db.sessions.begin() as session:
            earlier = await find_earlier(session, ONBOARDING_KEYS, (), key, fingerprint)
        if earlier is None:
            raise
        return Onboarding(merchant=earlier, api_key=None, replayed=True)
    return Onboarding(merchant=merchant, api_key=api_key)


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
