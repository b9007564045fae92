"""The network policy: versioned, admin-set, read by everyone.

A version applies from its ``effective_from`` until the next version's; each ledger
entry settles under the version in force at its ``created_at``. Versions are only
appended, never edited, and a new one may not start inside an already settled period
(closed batches keep the figures they were closed with in any case). With no version
stored, :func:`default_policy` (from the settings) is in force since the epoch.

Rates are ``Decimal`` values between 0 and 1, kept as their canonical strings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.caching import Refreshed
from coalition.config import DEFAULT_REDEEM_WITHOUT_PROOF_POINTS, Settings
from coalition.db import Database, utcnow
from coalition.errors import check_idempotency_key
from coalition.ledger.core import MAX_POINTS
from coalition.ledger.idempotency import KeyColumns, find_earlier, insert_once, request_hash
from coalition.settlement.errors import InvalidPolicy
from coalition.settlement.models import FundingModel, NetworkPolicy, SettlementBatch, SettlementPeriod

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_POINT_VALUE_MINOR = 1_000_000
POLICY_KEYS = KeyColumns(NetworkPolicy, key="idempotency_key", fingerprint="request_hash")


@dataclass(frozen=True)
class Policy:
    """One version of the policy. ``id`` is None for the default (nothing stored yet)."""

    point_value_minor: int
    funding_model: FundingModel
    reimbursement_rate: Decimal
    breakage_share: Decimal
    period: SettlementPeriod
    timezone: str
    effective_from: dt.datetime = EPOCH
    id: int | None = None
    # Points one merchant may redeem or hold from one member in a rolling 24 h without the
    # member's proof of presence (coalition.ledger.presence). Not a settlement figure, so not
    # in as_dict (which statements sign).
    redeem_without_proof_points: int = DEFAULT_REDEEM_WITHOUT_PROOF_POINTS

    def as_dict(self) -> dict[str, Any]:
        """The canonical form written into statements (strings for rates, no floats)."""
        return {
            "id": self.id, "pointValueMinor": self.point_value_minor, "fundingModel": self.funding_model.value,
            "reimbursementRate": str(self.reimbursement_rate), "breakageShare": str(self.breakage_share),
            "period": self.period.value, "timezone": self.timezone,
            "effectiveFrom": self.effective_from.astimezone(dt.UTC).isoformat(),
        }


def default_policy(settings: Settings) -> Policy:
    return Policy(point_value_minor=settings.point_value_minor, funding_model=FundingModel.ISSUANCE,
                  reimbursement_rate=Decimal("0.90"), breakage_share=Decimal("0.5"),
                  period=SettlementPeriod.MONTHLY, timezone="UTC",
                  redeem_without_proof_points=settings.redeem_without_proof_points)


def _rate(value: Any, field: str, code: str) -> Decimal:
    try:
        rate = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidPolicy(f"{field} must be a decimal between 0 and 1, e.g. 0.90; got {value!r}",
                            code=code, field=field) from None
    if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
        raise InvalidPolicy(f"{field} must be between 0 and 1, got {value}", code=code, field=field)
    if rate.as_tuple().exponent < -12:  # type: ignore[operator]
        raise InvalidPolicy(f"{field} has more than 12 decimal places", code=code, field=field)
    return rate.normalize() if rate != 0 else Decimal(0)


def _choice(enum_type: Any, value: Any, field: str, code: str) -> Any:
    try:
        return enum_type(str(value).upper())
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise InvalidPolicy(f"{field} must be one of {allowed}; got {value!r}", code=code, field=field) from None


def validate_policy(base: Policy, **changes: Any) -> Policy:
    """``base`` with ``changes`` applied (None means keep), checked. Raises :class:`InvalidPolicy`."""
    values = {k: v for k, v in changes.items() if v is not None}
    if "point_value_minor" in values:
        value = values["point_value_minor"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POINT_VALUE_MINOR:
            raise InvalidPolicy(f"pointValueMinor must be an integer from 0 to {MAX_POINT_VALUE_MINOR}, "
                                f"got {value!r}", code="INVALID_POINT_VALUE", field="pointValueMinor")
    if "redeem_without_proof_points" in values:
        value = values["redeem_without_proof_points"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POINTS:
            raise InvalidPolicy(f"redeemWithoutProofPoints must be an integer from 0 to {MAX_POINTS}, got {value!r}",
                                code="INVALID_REDEEM_WITHOUT_PROOF_POINTS", field="redeemWithoutProofPoints")
    if "funding_model" in values:
        values["funding_model"] = _choice(FundingModel, values["funding_model"], "fundingModel",
                                          "INVALID_FUNDING_MODEL")
    if "period" in values:
        values["period"] = _choice(SettlementPeriod, values["period"], "period", "INVALID_PERIOD")
    if "reimbursement_rate" in values:
        values["reimbursement_rate"] = _rate(values["reimbursement_rate"], "reimbursementRate",
                                             "INVALID_REIMBURSEMENT_RATE")
    if "breakage_share" in values:
        values["breakage_share"] = _rate(values["breakage_share"], "breakageShare", "INVALID_BREAKAGE_SHARE")
    if "timezone" in values:
        try:
            ZoneInfo(str(values["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidPolicy(f"timezone must be an IANA name such as Europe/Paris, got {values['timezone']!r}",
                                code="INVALID_TIMEZONE", field="timezone") from None
    if "effective_from" in values:
        when = values["effective_from"]
        if not isinstance(when, dt.datetime) or when.tzinfo is None:
            raise InvalidPolicy("effectiveFrom must be a date-time with a time zone",
                                code="INVALID_EFFECTIVE_FROM", field="effectiveFrom")
        values["effective_from"] = when.astimezone(dt.UTC)
    return replace(base, **values)


def _from_row(row: Any, settings: Settings) -> Policy:
    allowance = row.redeem_without_proof_points
    return Policy(id=row.id, point_value_minor=row.point_value_minor, funding_model=FundingModel(row.funding_model),
                  reimbursement_rate=Decimal(row.reimbursement_rate), breakage_share=Decimal(row.breakage_share),
                  period=SettlementPeriod(row.period), timezone=row.timezone, effective_from=row.effective_from,
                  redeem_without_proof_points=settings.redeem_without_proof_points if allowance is None else allowance)


async def policy_versions(conn: AsyncConnection, settings: Settings) -> list[Policy]:
    """Every version, oldest first; the default alone when none is stored."""
    rows = await conn.execute(select(NetworkPolicy).order_by(NetworkPolicy.effective_from, NetworkPolicy.id))
    versions = [_from_row(r, settings) for r in rows]
    if not versions or versions[0].effective_from > EPOCH:
        versions.insert(0, default_policy(settings))
    return versions


def policy_at(versions: list[Policy], when: dt.datetime) -> Policy:
    current = versions[0]
    for version in versions:
        if version.effective_from <= when:
            current = version
    return current


async def list_policy_versions(db: Database, settings: Settings) -> list[Policy]:
    """Every version, oldest first (the default first when none is stored from the start)."""
    async with db.read() as conn:
        return await policy_versions(conn, settings)


async def current_policy(db: Database, settings: Settings, now: dt.datetime | None = None) -> Policy:
    async with db.read() as conn:
        return policy_at(await policy_versions(conn, settings), now or utcnow())


async def set_policy(db: Database, settings: Settings, *, now: dt.datetime | None = None,
                     idempotency_key: str | None = None, **changes: Any) -> Policy:
    """Append a version: the one in force at ``effective_from`` (default now) with ``changes``.

    Refuses (``INVALID_EFFECTIVE_FROM``) a start before the latest version's or inside a
    settled period. Nothing is written when a value is refused.

    With ``idempotency_key`` (optional: one key space for the network), once per key, in the precedence
    of ``coalition/ledger/idempotency.py`` (replay, conflict; checked first, so a retry is not refused
    for a start the first call's version made "before the latest"; no merchant writes, nothing is looked
    up): a retry with the same input (``effectiveFrom`` as sent: left out, it is the first call's time)
    answers with the version written under the key, whatever was appended since; other input under the
    key is IDEMPOTENCY_KEY_CONFLICT; of concurrent calls with one key, one appends.
    """
    now = now or utcnow()
    sent_from = changes.pop("effective_from", None)
    effective_from = sent_from or now
    key = None if idempotency_key is None else check_idempotency_key(idempotency_key)
    fingerprint = request_hash("setNetworkPolicy", effective_from=sent_from, **changes)
    async with db.transaction() as conn:
        if key is not None and (earlier := await find_earlier(conn, POLICY_KEYS, (), key, fingerprint)):
            return _from_row(earlier, settings)
        versions = await policy_versions(conn, settings)
        policy = validate_policy(policy_at(versions, effective_from), effective_from=effective_from, **changes)
        latest = versions[-1].effective_from
        if policy.effective_from < latest:
            raise InvalidPolicy(f"effectiveFrom {policy.effective_from.isoformat()} is before the latest version's "
                                f"({latest.isoformat()}); versions only go forward", code="INVALID_EFFECTIVE_FROM",
                                field="effectiveFrom")
        settled = (await conn.execute(select(func.max(SettlementBatch.period_end)))).scalar_one_or_none()
        if settled is not None and policy.effective_from < settled:
            raise InvalidPolicy(f"effectiveFrom {policy.effective_from.isoformat()} is inside a settled period "
                                f"(settled up to {settled.isoformat()})", code="INVALID_EFFECTIVE_FROM",
                                field="effectiveFrom")
        values = dict(
            point_value_minor=policy.point_value_minor, funding_model=policy.funding_model,
            reimbursement_rate=str(policy.reimbursement_rate), breakage_share=str(policy.breakage_share),
            period=policy.period, timezone=policy.timezone, effective_from=policy.effective_from, created_at=now,
            redeem_without_proof_points=policy.redeem_without_proof_points,
        )
        if key is None:
            new_id = (await conn.execute(insert(NetworkPolicy).values(**values).returning(NetworkPolicy.id))
                      ).scalar_one()
        else:  # the unique index decides between concurrent calls with the key: the loser replays the winner's
            written, inserted = await insert_once(conn, POLICY_KEYS, {
                **values, "idempotency_key": key, "request_hash": fingerprint})
            if not inserted:
                return _from_row(written, settings)
            new_id = written.id
    global _generation
    _generation += 1  # this process's PolicyCache reads the new version at once
    return replace(policy, id=new_id)


_generation = 0


class PolicyCache:
    """The policy versions, re-read at most every ``ttl_s`` seconds: the ledger asks on every redemption.

    A version appended in this process is seen at once; one appended by another process within
    ``ttl_s``. Versions start at their ``effective_from``, so one set ahead of time applies on the dot.
    """

    def __init__(self, db: Database, settings: Settings, ttl_s: float = 2.0) -> None:
        self.db, self.settings = db, settings
        self._versions = Refreshed(self._read, ttl_s, lambda: _generation)  # one read at a time

    async def _read(self) -> list[Policy]:
        async with self.db.read() as conn:
            return await policy_versions(conn, self.settings)

    async def versions(self) -> list[Policy]:
        return await self._versions.get()

    async def redeem_without_proof_points(self, when: dt.datetime) -> int:
        return policy_at(await self.versions(), when).redeem_without_proof_points

    async def timezone(self, when: dt.datetime) -> str:
        """The network's time zone at ``when``: the pages show dates and read date inputs on its clock."""
        return policy_at(await self.versions(), when).timezone


def latest_period_end(policy: Policy, now: dt.datetime) -> dt.datetime:
    """The most recent period boundary at or before ``now``, in the policy's time zone (as UTC)."""
    local = now.astimezone(ZoneInfo(policy.timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if policy.period == SettlementPeriod.WEEKLY:
        start = midnight - dt.timedelta(days=midnight.weekday())  # Monday
    elif policy.period == SettlementPeriod.MONTHLY:
        start = midnight.replace(day=1)
    else:
        start = midnight
    # Rebuild from the wall-clock fields so a DST change between the two dates is respected.
    naive = dt.datetime(start.year, start.month, start.day)
    return naive.replace(tzinfo=ZoneInfo(policy.timezone)).astimezone(dt.UTC)
