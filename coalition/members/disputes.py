"""Member disputes: a member's recourse against a redemption it did not make.

A member sees every transaction on its account, at every merchant (``Member.transactions``
for a member caller). If a merchant spent its points without it (a rogue till, a stolen
loyalty ID), the member disputes that redemption; an admin reviews the open disputes and
resolves (the network then reverses or adjusts through the ledger) or dismisses them.

Errors::

    TRANSACTION_NOT_FOUND     no transaction of this member has that id (another member's
                              looks the same: nothing is said about it)
    NOT_DISPUTABLE            only REDEEM, HOLD and CAPTURE transactions spend points
    DISPUTE_EXISTS            the transaction is already disputed (under another key)
    INVALID_REASON            blank or longer than 500 characters
    IDEMPOTENCY_KEY_CONFLICT  the key was used for another dispute
    DISPUTE_NOT_FOUND         (admin) no dispute has that id
    DISPUTE_NOT_OPEN          (admin) the dispute was already resolved or dismissed
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coalition.db import Database, utcnow
from coalition.errors import Conflict, InvalidInput, NotFound, check_idempotency_key, check_text
from coalition.ledger.errors import TransactionNotFound
from coalition.ledger.idempotency import KeyColumns, Outcomes, find_earlier, request_hash
from coalition.ledger.models import Entry, EntryKind
from coalition.members.models import Dispute, DisputeStatus

MAX_REASON_LENGTH = 500
DISPUTABLE = frozenset({EntryKind.REDEEM, EntryKind.HOLD, EntryKind.CAPTURE})


class DisputeNotFound(NotFound):
    code = "DISPUTE_NOT_FOUND"


async def dispute_transaction(db: Database, *, member_id: int, entry_id: int, reason: str, idempotency_key: str,
                              now: dt.datetime | None = None) -> Dispute:
    """Open a dispute of one of the member's own spending transactions; a retry with the same key returns it."""
    key = check_idempotency_key(idempotency_key)
    text = check_text(reason, "reason", MAX_REASON_LENGTH, required=True)
    assert text is not None
    fingerprint = request_hash("dispute", entry_id=entry_id, reason=text)
    now = now or utcnow()
    try:
        async with db.sessions.begin() as session:
            if (earlier := await _outcomes(session, member_id, key, fingerprint).earlier()) is not None:
                return earlier
            entry = (await session.execute(select(Entry.id, Entry.kind, Entry.merchant_id).where(
                Entry.id == entry_id, Entry.member_id == member_id))).first()
            if entry is None:
                raise TransactionNotFound("you have no transaction with this id", field="transactionId")
            if entry.kind not in DISPUTABLE:
                raise InvalidInput(f"a {entry.kind} transaction cannot be disputed: only redemptions, holds and "
                                   "captures spend points", code="NOT_DISPUTABLE", field="transactionId")
            if (await session.execute(select(Dispute.id).where(Dispute.entry_id == entry_id))).first():
                raise _exists()
            dispute = Dispute(member_id=member_id, entry_id=entry_id, merchant_id=entry.merchant_id, reason=text,
                              status=DisputeStatus.OPEN, idempotency_key=key, request_hash=fingerprint,
                              created_at=now)
            session.add(dispute)
            await session.flush()
            return dispute
    except IntegrityError:
        # A concurrent request won: the same key (answer as a retry) or the same transaction.
        async with db.session() as session:
            return await _outcomes(session, member_id, key, fingerprint).explain(_exists())


# A dispute's key is unique per member (no merchant writes it: no suspension to check).
DISPUTE_KEYS = KeyColumns(Dispute, key="idempotency_key", fingerprint="request_hash", scope=("member_id",))


def _outcomes(session: AsyncSession, member_id: int, key: str, fingerprint: str) -> Outcomes[Dispute]:
    """The dispute this member opened under this key (a retry), or IDEMPOTENCY_KEY_CONFLICT for other input."""
    return Outcomes(earlier=lambda: find_earlier(session, DISPUTE_KEYS, (member_id,), key, fingerprint))


def _exists() -> Conflict:
    return Conflict("this transaction is already disputed; the network is reviewing it", code="DISPUTE_EXISTS",
                    field="transactionId")


async def list_disputes(db: Database, *, before_id: int | None, limit: int,
                        status: DisputeStatus | None = None, member_id: int | None = None) -> list[Dispute]:
    """Newest first: every member's for admins, or one member's (``member_id``)."""
    query = select(Dispute)
    if member_id is not None:
        query = query.where(Dispute.member_id == member_id)
    if status is not None:
        query = query.where(Dispute.status == status)
    if before_id is not None:
        query = query.where(Dispute.id < before_id)
    async with db.session() as session:
        return list((await session.execute(query.order_by(Dispute.id.desc()).limit(limit))).scalars())


async def get_dispute(db: Database, dispute_id: int) -> Dispute | None:
    async with db.session() as session:
        return (await session.execute(select(Dispute).where(Dispute.id == dispute_id))).scalar_one_or_none()


async def close_dispute(db: Database, dispute_id: int, *, status: DisputeStatus, note: str | None,
                        now: dt.datetime | None = None) -> Dispute:
    """Resolve or dismiss an open dispute (admin). Any money fix goes through the ledger separately."""
    if status == DisputeStatus.OPEN:
        raise InvalidInput("a dispute is closed as RESOLVED or DISMISSED", code="INVALID_STATUS", field="status")
    clean_note = check_text(note, "note", MAX_REASON_LENGTH)
    now = now or utcnow()
    async with db.sessions.begin() as session:
        changed = (await session.execute(
            update(Dispute).where(Dispute.id == dispute_id, Dispute.status == DisputeStatus.OPEN)
            .values(status=status, resolved_at=now, resolution_note=clean_note).returning(Dispute.id)
        )).scalar()
        dispute = (await session.execute(
            select(Dispute).where(Dispute.id == dispute_id).execution_options(populate_existing=True)
        )).scalar_one_or_none()
    if dispute is None:
        raise DisputeNotFound(f"no dispute has id {dispute_id}", field="disputeId")
    if changed is None:
        raise Conflict(f"dispute {dispute_id} is already {dispute.status}", code="DISPUTE_NOT_OPEN", field="disputeId")
    return dispute
