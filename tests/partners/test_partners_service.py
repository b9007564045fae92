"""Onboarding, suspending and listing partner merchants."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from coalition.auth.models import ApiKey, Role
from coalition.auth.service import Authenticator
from coalition.crypto import hash_secret
from coalition.errors import DomainError
from coalition.partners.models import Merchant, MerchantStatus
from coalition.partners.service import (
    MAX_EARN_RATE,
    list_merchants,
    onboard_merchant,
    set_merchant_status,
)


async def count(db: Any, model: Any) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(model))).scalar_one()


async def refused(db: Any, code: str, field: str, **kwargs: Any) -> None:
    """Onboarding is refused with ``code`` on ``field`` and creates neither merchant nor key."""
    merchants, keys = await count(db, Merchant), await count(db, ApiKey)
    with pytest.raises(DomainError) as info:
        await onboard_merchant(db, **{"name": "Shop", **kwargs})
    assert (info.value.code, info.value.field) == (code, field), repr(info.value)
    assert (await count(db, Merchant), await count(db, ApiKey)) == (merchants, keys)


async def test_onboarding_creates_an_active_merchant_and_its_key(db: Any) -> None:
    onboarding = await onboard_merchant(db, name="  Bakery Ana ", category=" food ", earn_rate_points_per_unit=3)
    merchant = onboarding.merchant
    assert (merchant.name, merchant.category, merchant.earn_rate_points_per_unit) == ("Bakery Ana", "food", 3)
    assert merchant.status == MerchantStatus.ACTIVE
    assert merchant.suspended_at is None
    caller = await Authenticator(db, cache_s=0).authenticate(onboarding.api_key)
    assert caller is not None
    assert (caller.role, caller.merchant_id) == (Role.MERCHANT, merchant.id)


async def test_earn_rate_defaults_to_one(db: Any) -> None:
    assert (await onboard_merchant(db, name="Shop")).merchant.earn_rate_points_per_unit == 1


@pytest.mark.parametrize("rate", [0, MAX_EARN_RATE])
async def test_earn_rate_bounds_are_accepted(db: Any, rate: int) -> None:
    assert (await onboard_merchant(db, name="Shop", earn_rate_points_per_unit=rate)).merchant \
        .earn_rate_points_per_unit == rate


async def test_api_key_is_stored_only_as_its_hash(db: Any) -> None:
    onboarding = await onboard_merchant(db, name="Shop")
    key = onboarding.api_key
    assert key.startswith("coa_") and len(key) > 40
    async with db.read() as conn:
        rows = list(await conn.execute(select(ApiKey)))
    assert len(rows) == 1
    [row] = rows
    assert row.key_hash == hash_secret(key)
    assert (row.role, row.merchant_id) == (Role.MERCHANT, onboarding.merchant.id)
    # the key text appears nowhere: no column holds it (the displayed prefix is only a part of it)
    for value in row:
        assert key not in str(value)
    assert len(row.prefix) < len(key) // 2


async def test_every_merchant_gets_its_own_key(db: Any) -> None:
    first = await onboard_merchant(db, name="A")
    second = await onboard_merchant(db, name="B")
    assert first.api_key != second.api_key
    assert first.merchant.id != second.merchant.id


@pytest.mark.parametrize("name", ["", "   ", "x" * 121, "new\nline", None])
async def test_invalid_name_is_refused(db: Any, name: Any) -> None:
    await refused(db, "INVALID_NAME", "name", name=name)


@pytest.mark.parametrize("category", ["c" * 61, "tab\tcategory"])
async def test_invalid_category_is_refused(db: Any, category: str) -> None:
    await refused(db, "INVALID_CATEGORY", "category", category=category)


@pytest.mark.parametrize("rate", [-1, MAX_EARN_RATE + 1, True, 1.5, "2"])
async def test_invalid_earn_rate_is_refused(db: Any, rate: Any) -> None:
    await refused(db, "INVALID_EARN_RATE", "earnRatePointsPerUnit", earn_rate_points_per_unit=rate)


async def test_blank_category_is_none(db: Any) -> None:
    assert (await onboard_merchant(db, name="Shop", category="  ")).merchant.category is None


async def test_suspend_and_reactivate(db: Any) -> None:
    merchant = (await onboard_merchant(db, name="Shop")).merchant
    suspended = await set_merchant_status(db, merchant.id, MerchantStatus.SUSPENDED)
    assert suspended.status == MerchantStatus.SUSPENDED
    assert suspended.suspended_at is not None
    # suspending again changes nothing, not even the time
    again = await set_merchant_status(db, merchant.id, MerchantStatus.SUSPENDED)
    assert again.status == MerchantStatus.SUSPENDED
    # compared without tzinfo: SQLite reads timestamps back naive (see test_ledger_earn_redeem.py,
    # test_timestamps_read_back_as_timezone_aware_utc)
    assert again.suspended_at.replace(tzinfo=None) == suspended.suspended_at.replace(tzinfo=None)
    active = await set_merchant_status(db, merchant.id, MerchantStatus.ACTIVE)
    assert (active.status, active.suspended_at) == (MerchantStatus.ACTIVE, None)
    async with db.read() as conn:
        stored = (await conn.execute(select(Merchant.status, Merchant.suspended_at))).one()
    assert (stored.status, stored.suspended_at) == (MerchantStatus.ACTIVE, None)


async def test_a_suspended_merchants_key_still_authenticates(db: Any) -> None:
    # it may read its history; the ledger refuses its writes (see the ledger tests)
    onboarding = await onboard_merchant(db, name="Shop")
    await set_merchant_status(db, onboarding.merchant.id, MerchantStatus.SUSPENDED)
    caller = await Authenticator(db, cache_s=0).authenticate(onboarding.api_key)
    assert caller is not None and caller.merchant_id == onboarding.merchant.id


async def test_unknown_merchant_is_not_found(db: Any) -> None:
    merchant = (await onboard_merchant(db, name="Shop")).merchant
    with pytest.raises(DomainError) as info:
        await set_merchant_status(db, merchant.id + 100, MerchantStatus.SUSPENDED)
    assert (info.value.code, info.value.field) == ("MERCHANT_NOT_FOUND", "merchantId")
    async with db.read() as conn:
        assert (await conn.execute(select(Merchant.status))).scalar_one() == MerchantStatus.ACTIVE


async def test_list_merchants_pages_oldest_first(db: Any) -> None:
    ids = [(await onboard_merchant(db, name=f"M{i}")).merchant.id for i in range(5)]
    first = await list_merchants(db, after_id=None, limit=2)
    assert [m.id for m in first] == ids[:2]
    rest = await list_merchants(db, after_id=first[-1].id, limit=10)
    assert [m.id for m in rest] == ids[2:]
    assert await list_merchants(db, after_id=ids[-1], limit=10) == []
