"""Vouchers: a claimed reward, shown at the till and marked used by the reward's merchant.

Claiming (:func:`claim_reward`) is one database transaction, in this lock order (the same in
every programs write, so no two wait on each other in a cycle): the reward row (stock), then
the ledger's own order (the entry's key, the member row, the member's lots), then the new
voucher row. Its steps:

1. the voucher under the claim's key, if any: the same answer again (or
   IDEMPOTENCY_KEY_CONFLICT for another input);
2. the stock: ``UPDATE rewards SET stock_left = stock_left - 1 WHERE stock_left > 0`` and the
   reward still valid; no row means OUT_OF_STOCK or REWARD_INACTIVE. As with a balance, the
   conditional UPDATE (and a CHECK ``stock_left >= 0``) is what stops an oversell under any
   concurrency: concurrent claims queue on the reward's row and each sees the stock left by
   the one before;
3. the points: the ledger's redemption (``Ledger.redeem_in``) at the reward's merchant, under a
   key of the claim's own (:func:`coalition.ledger.idempotency.internal_key`), with the member's
   proof of presence as the policy asks when a merchant claims at the till (none when the
   member claims from its wallet with its own token). So the points settle exactly as a
   redemption: the lots consumed FIFO, the honored points attributed to their issuers;
4. the voucher, with a random code (:func:`new_code`).

A refusal met in step 3 (too few points, a wrong proof) is kept under the claim's ledger key
(``coalition.ledger.refusals``), so wrong proofs count toward the limit as at ``redeemPoints``
and a retry gets the same refusal.

Expiry (:func:`expire_vouchers`, a worker job): an unused voucher past ``expires_at`` becomes
EXPIRED, its stock item goes back, and (setting ``COALITION_VOUCHER_EXPIRY_REFUND``, default on)
its redemption is reversed through the ledger, in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import re
import secrets
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import Change, note_change
from coalition.errors import DomainError, IdempotencyKeyConflict, InvalidInput, check_idempotency_key
from coalition.ledger import core, idempotency, presence, refusals
from coalition.ledger.errors import MemberNotFound, MerchantSuspended
from coalition.ledger.idempotency import KeyColumns, as_model, find_earlier, internal_key
from coalition.ledger.inputs import parse_loyalty_id
from coalition.ledger.models import Entry
from coalition.ledger.service import Ledger
from coalition.members.models import Member
from coalition.programs.errors import OutOfStock, RewardInactive, RewardNotFound, VoucherClosed, VoucherNotFound
from coalition.programs.reward_models import Reward, Voucher, VoucherStatus

logger = logging.getLogger("coalition.programs")

# Crockford's base32 (no I, L, O, U): 10 characters are 50 random bits, typed or read aloud
# without ambiguity; shown as XXXXX-XXXXX. A guesser must also be the reward's merchant.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
_CODE = re.compile(f"^[{ALPHABET}]{{{CODE_LENGTH}}}$")
_V = Voucher.__table__.c
CLAIM_KEYS = KeyColumns(Voucher, key="idempotency_key", fingerprint="request_hash", scope=("claim_scope",))
USE_KEYS = KeyColumns(Voucher, key="use_key", fingerprint="use_hash", scope=("merchant_id",))


@dataclasses.dataclass(frozen=True)
class VoucherResult:
    voucher: Voucher
    member: Member  # the member after the claim or use
    replayed: bool = False

    @classmethod
    def of(cls, row: Any, member: Member, replayed: bool = False) -> VoucherResult:
        return cls(row if isinstance(row, Voucher) else as_model(Voucher, row), member, replayed)


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


def normalize_code(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidInput("code must be a string", code="INVALID_VOUCHER_CODE", field="code")
    code = raw[:40].upper().replace("-", "").replace(" ", "").replace("O", "0").replace("I", "1").replace("L", "1")
    if not _CODE.match(code):
        raise InvalidInput("code is not a voucher code (10 letters and digits, e.g. 7KQ2M-4XW9P)",
                           code="INVALID_VOUCHER_CODE", field="code")
    return code


class _Retry(Exception):
    """A concurrent request with the same key committed first: answer from what it wrote."""


async def _voucher_by_key(conn: AsyncConnection, scope: str, key: str, fingerprint: str) -> Any:
    return await find_earlier(conn, CLAIM_KEYS, (scope,), key, fingerprint)


async def _member(conn: AsyncConnection, member_id: int) -> Member:
    return core.member_from_row((await conn.execute(select(Member).where(Member.id == member_id))).one())


async def claim_reward(
    ledger: Ledger, *, reward_id: int, loyalty_id: str, idempotency_key: str, now: dt.datetime,
    merchant_id: int | None = None, member_id: int | None = None, member_proof: str | None = None,
) -> VoucherResult:
    """Claim a reward for the member with ``loyalty_id``: at the till (``merchant_id``: the caller, who must
    be the reward's merchant) or from the wallet (``member_id``: the caller, who must be that member)."""
    if (merchant_id is None) == (member_id is None):
        raise TypeError("claim_reward takes exactly one of merchant_id and member_id")
    key = check_idempotency_key(idempotency_key)
    lid = parse_loyalty_id(loyalty_id)
    proof = presence.check_proof_input(member_proof) if merchant_id is not None else None
    scope = f"merchant:{merchant_id}" if merchant_id is not None else f"member:{member_id}"
    fingerprint = core.request_hash("claimReward", reward_id=reward_id, loyalty_id=lid)
    entry_key = internal_key("claim", scope, hashlib.sha256(key.encode()).hexdigest()[:40])
    allowance = await ledger.allowance(now)
    for _ in range(3):
        try:
            return await _claim(ledger, reward_id, lid, key, scope, fingerprint, entry_key, proof, allowance, now,
                                merchant_id, member_id)
        except _Retry:
            continue
        except IntegrityError:  # two vouchers drew the same code (2^-50): draw again
            continue
    raise VoucherNotFound("the claim could not be completed; retry with the same idempotencyKey")


async def _claim(
    ledger: Ledger, reward_id: int, lid: str, key: str, scope: str, fingerprint: str, entry_key: str,
    proof: str | None, allowance: int, now: dt.datetime, merchant_id: int | None, member_id: int | None,
) -> VoucherResult:
    reward: Any = None
    try:
        async with ledger.db.transaction() as conn:
            earlier = await _voucher_by_key(conn, scope, key, fingerprint)
            if earlier is not None:
                return VoucherResult.of(earlier, await _member(conn, earlier.member_id), replayed=True)
            reward = (await conn.execute(select(*Reward.__table__.c).where(Reward.id == reward_id))).first()
            if reward is None or (merchant_id is not None and reward.merchant_id != merchant_id):
                raise RewardNotFound("no such reward at this merchant: pass the ID of one of its own",
                                     field="rewardId")
            if member_id is not None:
                own = (await conn.execute(select(Member.id).where(Member.loyalty_id == lid))).scalar()
                if own != member_id:
                    raise MemberNotFound("a member claims for itself: pass your own loyalty ID", field="loyaltyId")
            await _take_stock(conn, reward, now)
            result = await ledger.redeem_in(
                conn, merchant_id=reward.merchant_id, loyalty_id=lid, points=reward.points_cost,
                reference=f"reward {reward.id}", key=entry_key, fingerprint=fingerprint, proof=proof,
                allowance=allowance, now=now, by_member=member_id is not None)
            if result is None:
                if await core.find_by_key(conn, reward.merchant_id, entry_key, fingerprint) is not None:
                    raise _Retry
                if not await idempotency.merchant_is_active(conn, reward.merchant_id):
                    raise MerchantSuspended("the reward's merchant is suspended: its rewards cannot be claimed")
                raise MemberNotFound(f"no member has loyalty ID {lid}", field="loyaltyId")
            voucher = await issue_voucher_in(
                conn, reward=reward, member_id=result.member.id, scope=scope, key=key, fingerprint=fingerprint,
                points=reward.points_cost, redeem_entry_id=result.entry.id, now=now)
            return VoucherResult.of(voucher, result.member)
    except DomainError as exc:
        if reward is not None and refusals.is_recordable(exc) and not isinstance(exc, RewardNotFound):
            await refusals.record(ledger.db, merchant_id=reward.merchant_id, key=entry_key, fingerprint=fingerprint,
                                  error=exc, now=now, member_id=getattr(exc, "member_id", None))
        raise


async def _take_stock(conn: AsyncConnection, reward: Any, now: dt.datetime) -> None:
    valid = (Reward.active.is_(True)
             & ((Reward.valid_from.is_(None)) | (Reward.valid_from <= now))
             & ((Reward.valid_until.is_(None)) | (Reward.valid_until > now)))
    if reward.stock_left is None and reward.stock_total is None:
        # Unlimited: no row to update, so claims of a popular reward do not queue on it.
        if not (reward.active and (reward.valid_from is None or reward.valid_from <= now)
                and (reward.valid_until is None or reward.valid_until > now)):
            raise RewardInactive("the reward is not valid now", field="rewardId")
        return
    taken = (await conn.execute(
        update(Reward).where(Reward.id == reward.id, valid, Reward.stock_left > 0)
        .values(stock_left=Reward.stock_left - 1).returning(Reward.id)
    )).first()
    if taken is None:
        fresh = (await conn.execute(select(Reward.stock_left).where(Reward.id == reward.id))).scalar()
        if fresh == 0:
            raise OutOfStock("the reward is out of stock", field="rewardId")
        raise RewardInactive("the reward is not valid now", field="rewardId")


async def issue_voucher_in(
    conn: AsyncConnection, *, reward: Any, member_id: int, scope: str, key: str, fingerprint: str, points: int,
    now: dt.datetime, redeem_entry_id: int | None = None, stamp_card_id: int | None = None,
    card_number: int | None = None,
) -> Any:
    """Insert a voucher for ``reward`` in the caller's transaction; returns the row."""
    values = {
        "code": new_code(), "reward_id": reward.id, "merchant_id": reward.merchant_id, "member_id": member_id,
        "status": VoucherStatus.ISSUED, "points": points, "redeem_entry_id": redeem_entry_id,
        "reversal_entry_id": None, "stamp_card_id": stamp_card_id, "card_number": card_number,
        "claim_scope": scope, "idempotency_key": key, "request_hash": fingerprint, "use_key": None,
        "use_hash": None, "expires_at": now + dt.timedelta(days=reward.voucher_valid_days), "closed_at": None,
        "created_at": now,
    }
    voucher = (await conn.execute(insert(Voucher).values(**values).returning(*_V))).one()
    note_change(lambda: issued_change(voucher))  # the webhooks outbox, in this transaction
    return voucher


def issued_change(voucher: Any) -> Change:
    """The ``voucher.issued`` event, for the reward's merchant: the voucher's id, never its code (the
    member presents the code at the till; whoever holds it can use the voucher)."""
    return Change("voucher.issued", voucher.merchant_id, voucher.member_id, voucher.created_at, {
        "voucher_id": voucher.id, "reward_id": voucher.reward_id, "points": voucher.points,
        "stamp_card_id": voucher.stamp_card_id, "card_number": voucher.card_number,
        "redeem_entry_id": voucher.redeem_entry_id, "expires_at": voucher.expires_at,
    })


async def use_voucher(ledger: Ledger, *, merchant_id: int, code: str, idempotency_key: str,
                      now: dt.datetime) -> VoucherResult:
    """The reward's merchant marks the voucher used at the till, once."""
    key = check_idempotency_key(idempotency_key)
    normalized = normalize_code(code)
    fingerprint = core.request_hash("useVoucher", code=normalized)
    try:
        async with ledger.db.transaction() as conn:
            row = (await conn.execute(
                update(Voucher)
                .where(Voucher.code == normalized, Voucher.merchant_id == merchant_id,
                       Voucher.status == VoucherStatus.ISSUED, Voucher.expires_at > now)
                .values(status=VoucherStatus.USED, use_key=key, use_hash=fingerprint, closed_at=now)
                .returning(*_V)
            )).first()
            if row is None:
                row = await _explain_unused(conn, merchant_id, normalized, key, fingerprint, now)
            return VoucherResult.of(row, await _member(conn, row.member_id))
    except IntegrityError:  # the key marked another voucher used meanwhile
        raise IdempotencyKeyConflict(key) from None


async def _explain_unused(conn: AsyncConnection, merchant_id: int, code: str, key: str, fingerprint: str,
                          now: dt.datetime) -> Any:
    earlier = await find_earlier(conn, USE_KEYS, (merchant_id,), key, fingerprint)
    if earlier is not None:
        return earlier
    row = (await conn.execute(select(*_V).where(_V.code == code, _V.merchant_id == merchant_id))).first()
    if row is None:
        raise VoucherNotFound("no voucher of this merchant's rewards has that code", field="code")
    if row.status == VoucherStatus.USED:
        raise VoucherClosed("the voucher was used already", code="VOUCHER_ALREADY_USED", field="code")
    if row.status == VoucherStatus.CANCELLED:
        raise VoucherClosed("the voucher was cancelled (its purchase was reversed)", code="VOUCHER_CANCELLED",
                            field="code")
    raise VoucherClosed("the voucher has expired", code="VOUCHER_EXPIRED", field="code")


async def expire_vouchers(ledger: Ledger, *, now: dt.datetime, refund: bool = True, limit: int = 500) -> int:
    """Expire unused vouchers past their date; each in its own transaction. Returns how many."""
    async with ledger.db.read() as conn:
        ids = list((await conn.execute(
            select(Voucher.id).where(Voucher.status == VoucherStatus.ISSUED, Voucher.expires_at <= now)
            .order_by(Voucher.expires_at).limit(limit)
        )).scalars())
    done = 0
    for voucher_id in ids:
        try:
            async with ledger.db.transaction() as conn:
                done += await _expire_one(ledger, conn, voucher_id, now, refund)
        except DomainError as exc:  # e.g. the merchant is suspended: tried again at the next run
            logger.warning("voucher %s not expired: %s", voucher_id, exc.code)
    return done


async def _expire_one(ledger: Ledger, conn: AsyncConnection, voucher_id: int, now: dt.datetime,
                      refund: bool) -> int:
    row = (await conn.execute(
        update(Voucher).where(Voucher.id == voucher_id, Voucher.status == VoucherStatus.ISSUED,
                              Voucher.expires_at <= now)
        .values(status=VoucherStatus.EXPIRED, closed_at=now).returning(*_V)
    )).first()
    if row is None:  # used or expired meanwhile
        return 0
    await restock_in(conn, row)
    if refund and row.redeem_entry_id is not None:
        await _refund(ledger, conn, row, "expiry", now)
    return 1


async def restock_in(conn: AsyncConnection, voucher: Any) -> None:
    # The item was never handed over: it goes back to the stock (never past the stock first published).
    # A stamp card's voucher took none (only claims take stock).
    if voucher.redeem_entry_id is None:
        return
    await conn.execute(update(Reward).where(Reward.id == voucher.reward_id, Reward.stock_left.is_not(None))
                       .values(stock_left=case((Reward.stock_left < Reward.stock_total, Reward.stock_left + 1),
                                               else_=Reward.stock_left)))


async def _refund(ledger: Ledger, conn: AsyncConnection, row: Any, why: str, now: dt.datetime) -> None:
    """Give a closed voucher's points back: the ledger's reversal of its redemption (unless the merchant
    reversed that redemption itself already, a refund at the till)."""
    reversed_already = (await conn.execute(
        select(Entry.id).where(Entry.reverses_id == row.redeem_entry_id))).scalar()
    if reversed_already is not None:
        return
    key = internal_key("voucher", why, row.id)
    fingerprint = core.request_hash("voucherRefund", voucher=row.id)
    result = await ledger.reverse_in(conn, row.merchant_id, row.redeem_entry_id, key, fingerprint,
                                     f"voucher {why}", now)
    await conn.execute(update(Voucher).where(Voucher.id == row.id).values(reversal_entry_id=result.entry.id))


async def cancel_voucher_in(ledger: Ledger, conn: AsyncConnection, voucher_id: int, now: dt.datetime) -> bool:
    """Cancel an unused voucher (its stamp card's purchase was reversed); False when it was used already."""
    row = (await conn.execute(
        update(Voucher).where(Voucher.id == voucher_id, Voucher.status == VoucherStatus.ISSUED)
        .values(status=VoucherStatus.CANCELLED, closed_at=now).returning(*_V)
    )).first()
    if row is None:
        return False
    await restock_in(conn, row)
    if row.redeem_entry_id is not None:
        await _refund(ledger, conn, row, "cancel", now)
    return True


async def voucher_by_id(ledger: Ledger, voucher_id: int) -> Any:
    async with ledger.db.read() as conn:
        return (await conn.execute(select(*_V).where(_V.id == voucher_id))).first()


async def member_vouchers(ledger: Ledger, *, member_id: int, merchant_id: int | None, before_id: int | None,
                          limit: int) -> list[Any]:
    """A member's vouchers, newest first (a merchant: those of its own rewards)."""
    query = select(*_V).where(_V.member_id == member_id).order_by(_V.id.desc()).limit(limit)
    if merchant_id is not None:
        query = query.where(_V.merchant_id == merchant_id)
    if before_id is not None:
        query = query.where(_V.id < before_id)
    async with ledger.db.read() as conn:
        return [as_model(Voucher, row) for row in await conn.execute(query)]
