"""Expiring lots past their date: one EXPIRY entry per member per run."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from coalition.ledger import core
from coalition.ledger.base import LedgerBase
from coalition.ledger.core import Slice
from coalition.ledger.models import Account, AllocationKind, EntryKind, Lot


class ExpiryOperations(LedgerBase):
    async def expire_lots(self, *, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Expire every lot whose date has passed. Returns (members touched, points expired).

        Points stay spendable until the run that expires them; run it at least daily
        (``coalition expire``, or the worker). Points under an open hold are not in the lot
        and so do not expire while held; if the hold is released later, the next run
        expires them.
        """
        now = self.clock()
        async with self.db.read() as conn:
            member_ids = list((await conn.execute(
                select(Lot.member_id).where(Lot.remaining > 0, Lot.expires_at <= now).distinct()
                .order_by(Lot.member_id)
            )).scalars())
        expired_total = 0
        for done, member_id in enumerate(member_ids, 1):
            async with self.db.transaction() as conn:
                await core.lock_member(conn, member_id)
                rows = await conn.execute(
                    select(Lot.id, Lot.issuer_merchant_id, Lot.remaining)
                    .where(Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at <= now)
                    .order_by(Lot.id)
                )
                slices = [Slice(r.id, r.issuer_merchant_id, r.remaining) for r in rows]
                points = sum(s.points for s in slices)
                if points:
                    inserted = await core.insert_entry(
                        conn, kind=EntryKind.EXPIRY, merchant_id=None, member_id=member_id,
                        points=-points, reference="points expired", now=now, idempotency_key=None,
                        request_hash=None, require_active_merchant=False,
                    )
                    assert inserted is not None
                    entry_id = inserted[0]
                    await core.move_lot_points(conn, {s.lot_id: -s.points for s in slices})
                    await core.add_allocations(conn, entry_id=entry_id, member_id=member_id, merchant_id=None,
                                               kind=AllocationKind.EXPIRY, slices=slices, now=now)
                    await core.add_to_member(conn, member_id, balance=-points)
                    by_issuer: dict[int | None, int] = {}
                    for s in slices:
                        by_issuer[s.issuer_merchant_id] = by_issuer.get(s.issuer_merchant_id, 0) + s.points
                    await core.add_postings(conn, entry_id, [(Account.MEMBER, member_id, -points)] + [
                        (Account.EXPIRED, issuer, pts) for issuer, pts in by_issuer.items()
                    ])
                    expired_total += points
            if progress is not None:
                progress(done, len(member_ids))
        return len(member_ids), expired_total
