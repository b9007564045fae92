"""Writing a synthetic network (``coalition.network.synthetic``) into the database, fast.

Used by ``coalition demo --members N`` for large N, where going through the services one
purchase at a time would take hours. The result is a consistent ledger that passes
``coalition check``: every earn an entry with two postings and a lot; every redemption an
entry with two postings and FIFO allocations against the member's lots (a redemption larger
than the member's balance at the time is cut down to it; one that finds nothing is dropped).
The lots are worked out with numpy over a cumulative "points earned" axis: lot *j* of a member
covers ``[E(j-1), E(j))`` and a redemption ``[R(k-1), R(k))``; allocations are the overlaps.
Only the cut-down of redemptions is a Python loop, over redemption rows.

Writes: PostgreSQL uses COPY (asyncpg ``copy_records_to_table``; as a superuser with the
foreign-key triggers off for the transaction), SQLite Core ``executemany`` in chunks.
Members are given ids in enrollment order so a referrer's id is always smaller than its
referees'; contact blind indexes that repeat (the generator's planted shared contacts) are
kept for the first member only, as the unique index demands, and for every member as the
contact fingerprint (not unique), which is what the shared-contact analysis reads.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.ledger.long_writes import announce_long_write
from coalition.ledger.models import Allocation, Entry, Lot, Posting
from coalition.loyalty_id import ALPHABET, BODY_LENGTH
from coalition.members.models import Member
from coalition.network.graphs import EARN, IntArray
from coalition.network.synthetic import SyntheticNetwork
from coalition.partners.models import Merchant

Progress = Callable[[str, int, int], None]
CHUNK = 200_000
EXPIRY_S = 365 * 86400


@dataclass(frozen=True)
class LoadedNetwork:
    merchant_ids: list[int]
    member_ids: IntArray  # database id of synthetic member i + 1
    rows: dict[str, int]
    elapsed_s: float


@dataclass(frozen=True, eq=False)
class _Ledger:
    earn: IntArray  # row indices (into the sorted purchases) of earns
    redeem: IntArray  # of kept redemptions
    redeem_points: IntArray
    alloc_redeem: IntArray  # per allocation: index into ``redeem``
    alloc_lot: IntArray  # per allocation: index into ``earn`` (= lot)
    alloc_points: IntArray
    lot_remaining: IntArray
    balance: IntArray  # per sorted member group
    lifetime: IntArray
    group_member: IntArray  # synthetic member id of each group


def _ledger(members: IntArray, kinds: Any, points: IntArray) -> _Ledger:
    """FIFO lots and allocations for rows sorted by (member, time, earn first)."""
    is_earn = kinds == EARN
    earned = np.where(is_earn, points, 0)
    cum = np.cumsum(earned)  # global "earned" axis: members follow one another
    starts = np.r_[0, np.flatnonzero(np.diff(members)) + 1]
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(members)]))
    group_base = cum[starts] - earned[starts]  # where each member's stretch of the axis begins
    red_rows = np.flatnonzero(~is_earn)
    red_start = np.zeros(len(red_rows), dtype=np.int64)
    red_take = np.zeros(len(red_rows), dtype=np.int64)
    finals = group_base.tolist()  # per member: how far redemptions have consumed the axis
    r_groups, r_points, r_cum = group[red_rows].tolist(), points[red_rows].tolist(), cum[red_rows].tolist()
    for n, (g, p, available_to) in enumerate(zip(r_groups, r_points, r_cum, strict=True)):
        used = finals[g]
        take = max(min(p, available_to - used), 0)
        red_start[n] = used
        red_take[n] = take
        finals[g] = used + take
    keep = red_take > 0
    red_rows, red_start, red_take = red_rows[keep], red_start[keep], red_take[keep]
    earn_rows = np.flatnonzero(is_earn & (points > 0))
    lot_end = cum[earn_rows]
    lot_start = lot_end - points[earn_rows]
    red_end = red_start + red_take
    first = np.searchsorted(lot_end, red_start, side="right")
    last = np.searchsorted(lot_start, red_end, side="left")
    counts = last - first
    alloc_redeem = np.repeat(np.arange(len(red_rows)), counts)
    offsets = np.arange(len(alloc_redeem)) - np.repeat(np.cumsum(counts) - counts, counts)
    alloc_lot = np.repeat(first, counts) + offsets
    alloc_points = (np.minimum(red_end[alloc_redeem], lot_end[alloc_lot]) -
                    np.maximum(red_start[alloc_redeem], lot_start[alloc_lot]))
    finals_array = np.asarray(finals, dtype=np.int64)
    consumed_to = finals_array[group[earn_rows]]
    lot_remaining = lot_end - np.clip(consumed_to, lot_start, lot_end)
    ends = np.r_[starts[1:], len(members)]
    lifetime = cum[ends - 1] - group_base
    balance = lifetime - (finals_array - group_base)
    return _Ledger(earn_rows, red_rows, red_take, alloc_redeem, alloc_lot, alloc_points, lot_remaining, balance,
                   lifetime, members[starts])


async def _write(conn: AsyncConnection, table: Any, columns: Sequence[str], rows: Iterable[tuple[Any, ...]],
                 report: Callable[[int], None]) -> None:
    """COPY on PostgreSQL, executemany on SQLite, in chunks."""
    done = 0
    batch: list[tuple[Any, ...]] = []

    async def flush() -> None:
        nonlocal done, batch
        if not batch:
            return
        if conn.dialect.name == "postgresql":
            raw = await conn.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name, records=batch, columns=list(columns))
        else:
            await conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in batch])
        done += len(batch)
        batch = []
        report(done)

    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            await flush()
    await flush()


def random_codes(n: int, *, loyalty: bool, rng: np.random.Generator) -> list[str]:
    """``n`` distinct loyalty IDs (``XXXX-XXXX-XXXX`` with the Luhn mod 32 check character) or
    8-character referral codes, drawn in bulk (the services draw them one at a time)."""
    alphabet = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
    width = BODY_LENGTH if loyalty else 8
    values = rng.integers(0, len(ALPHABET), size=(n, width))
    if loyalty:
        factors = np.where(np.arange(width)[::-1] % 2 == 0, 2, 1)  # 2 on the rightmost, as _check_character
        addend = values * factors
        total = (addend // len(ALPHABET) + addend % len(ALPHABET)).sum(axis=1)
        values = np.c_[values, (len(ALPHABET) - total % len(ALPHABET)) % len(ALPHABET)]
        chars = alphabet[values]
        dash = np.full((n, 1), ord("-"), dtype=np.uint8)
        chars = np.c_[chars[:, :4], dash, chars[:, 4:8], dash, chars[:, 8:]]
    else:
        chars = alphabet[values]
    codes = np.ascontiguousarray(chars).view(f"S{chars.shape[1]}").reshape(-1)
    _, first = np.unique(codes, return_index=True)
    if len(first) < n:  # a collision: draw the missing ones again
        keep = codes[np.sort(first)]
        more = random_codes(n - len(keep), loyalty=loyalty, rng=rng)
        return [*(c.decode() for c in keep.tolist()), *more]
    return [c.decode() for c in codes.tolist()]


def _times(epochs: IntArray) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(t, dt.UTC) for t in epochs.tolist()]


async def load_synthetic(
    db: Database, keys: NetworkKeys, network: SyntheticNetwork, *, merchant_names: Sequence[tuple[str, str]],
    shift_s: int = 0, progress: Progress | None = None,
) -> LoadedNetwork:
    """Write ``network`` (times moved by ``shift_s``) beside whatever the database holds."""
    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    sqlite = db.is_sqlite
    async with db.read() as conn:
        member_offset = int((await conn.execute(select(func.coalesce(func.max(Member.id), 0)))).scalar_one())
        entry_offset = int((await conn.execute(select(func.coalesce(func.max(Entry.id), 0)))).scalar_one())
        lot_offset = int((await conn.execute(select(func.coalesce(func.max(Lot.id), 0)))).scalar_one())

    # Members: ids in enrollment order, so referrers come first.
    syn = network.members
    order = np.lexsort((syn.ids, syn.enrolled_at))
    new_id = np.zeros(int(syn.ids.max()) + 1, dtype=np.int64)
    new_id[syn.ids[order]] = member_offset + 1 + np.arange(len(order))
    referrer_of = np.zeros(len(new_id), dtype=np.int64)
    ref = network.referrals
    referrer_of[ref.referee_ids] = new_id[ref.referrer_ids]
    referrer_of[referrer_of >= new_id] = 0  # a referral that would point forward is left out
    # Purchases sorted by (member, time, earns before redemptions), times moved to now.
    p = network.purchases
    porder = np.lexsort((p.kinds, p.times, p.member_ids))
    members, merchants, points = p.member_ids[porder], p.merchant_ids[porder], p.points[porder]
    amounts, times, kinds = p.amounts_minor[porder], p.times[porder] + shift_s, p.kinds[porder]
    report("ledger", 0, 1)
    ledger = _ledger(members, kinds, points)
    report("ledger", 1, 1)

    rows: dict[str, int] = {}
    async with db.transaction() as conn:
        await announce_long_write(conn)  # the dashboard rollup waits for it (ledger/long_writes.py)
        if not sqlite and (await conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))).scalar():
            # The rows are consistent by construction (foreign keys included); skipping the
            # per-row foreign-key triggers makes the COPYs several times faster.
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        merchant_ids = []
        for name, category in merchant_names:
            merchant_ids.append(int((await conn.execute(insert(Merchant).values(
                name=name, category=category, status="ACTIVE", earn_rate_points_per_unit=1,
                created_at=dt.datetime.fromtimestamp(int(times.min(initial=0)) - 30 * 86400, dt.UTC),
            ).returning(Merchant.id))).scalar_one()))
        merchant_db = np.zeros(int(network.merchant_ids.max()) + 1, dtype=np.int64)
        merchant_db[network.merchant_ids] = merchant_ids[: len(network.merchant_ids)]
        # First purchase merchant enrolls the member (else the first merchant).
        first_shop = np.full(len(new_id), merchant_ids[0], dtype=np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(members)) + 1] if len(members) else np.zeros(0, dtype=np.int64)
        first_shop[members[starts]] = merchant_db[merchants[starts]]
        balance = np.zeros(len(new_id), dtype=np.int64)
        lifetime = np.zeros(len(new_id), dtype=np.int64)
        balance[ledger.group_member] = ledger.balance
        lifetime[ledger.group_member] = ledger.lifetime

        seen: set[str] = set()

        def unique_index(value: Any) -> str | None:
            if not value or value in seen:
                return None
            seen.add(value)
            return str(value)

        def fingerprint(value: Any) -> str | None:
            return str(value) if value else None

        rng = np.random.default_rng(secrets.randbits(128))
        loyalty_ids = random_codes(len(order), loyalty=True, rng=rng)
        referral_codes = random_codes(len(order), loyalty=False, rng=rng)
        ids_sorted = syn.ids[order]
        enrolled = _times(syn.enrolled_at[order] + shift_s)
        emails, phones = syn.email_index[order], syn.phone_index[order]

        def member_rows() -> Iterable[tuple[Any, ...]]:
            for i, old in enumerate(ids_sorted.tolist()):
                mid = member_offset + 1 + i
                yield (mid, loyalty_ids[i], referral_codes[i],
                       int(referrer_of[old]) or None, unique_index(emails[i]),
                       unique_index(phones[i]), int(balance[old]), 0, 0, int(lifetime[old]), int(first_shop[old]),
                       enrolled[i], fingerprint(emails[i]), fingerprint(phones[i]))

        # No credentials: a bulk-loaded member gets a claim code from an admin (issueMemberClaimCode).
        member_columns = ["id", "loyalty_id", "referral_code", "referred_by_id", "email_index",
                          "phone_index", "balance", "held", "owed", "lifetime_points", "enrolled_by_merchant_id",
                          "created_at", "email_fingerprint", "phone_fingerprint"]
        await _write(conn, Member.__table__, member_columns, member_rows(),
                     lambda done: report("members", done, len(order)))
        rows["members"] = len(order)

        # Entries: earns and kept redemptions, ids in time order.
        entry_rows = np.r_[ledger.earn, ledger.redeem]
        entry_points = np.r_[points[ledger.earn], -ledger.redeem_points]
        by_time = np.argsort(times[entry_rows], kind="stable")
        entry_id = np.empty(len(entry_rows), dtype=np.int64)
        entry_id[by_time] = entry_offset + 1 + np.arange(len(entry_rows))
        n_earn = len(ledger.earn)
        entry_times = _times(times[entry_rows])
        member_db = new_id[members[entry_rows]]
        merchant_of_entry = merchant_db[merchants[entry_rows]]

        def entry_source() -> Iterable[tuple[Any, ...]]:
            for i in by_time.tolist():
                earn = i < n_earn
                yield (int(entry_id[i]), "EARN" if earn else "REDEEM", int(member_db[i]),
                       int(merchant_of_entry[i]), int(entry_points[i]),
                       int(amounts[entry_rows[i]]) if earn else None, entry_times[i])

        await _write(conn, Entry.__table__, ["id", "kind", "member_id", "merchant_id", "points", "amount_minor",
                                             "created_at"], entry_source(),
                     lambda done: report("transactions", done, len(entry_rows)))
        rows["entries"] = len(entry_rows)

        def posting_source() -> Iterable[tuple[Any, ...]]:
            for i in range(len(entry_rows)):
                e, m, s, pts = int(entry_id[i]), int(member_db[i]), int(merchant_of_entry[i]), int(entry_points[i])
                if i < n_earn:
                    yield e, "ISSUED", s, -pts
                    yield e, "MEMBER", m, pts
                else:
                    yield e, "MEMBER", m, pts
                    yield e, "HONORED", s, -pts

        await _write(conn, Posting.__table__, ["entry_id", "account", "account_id", "points"], posting_source(),
                     lambda done: report("postings", done, 2 * len(entry_rows)))
        rows["postings"] = 2 * len(entry_rows)

        lot_id = lot_offset + 1 + np.arange(n_earn)

        def lot_source() -> Iterable[tuple[Any, ...]]:
            for j in range(n_earn):
                created = entry_times[j]
                yield (int(lot_id[j]), int(member_db[j]), int(entry_id[j]), int(merchant_of_entry[j]),
                       int(entry_points[j]), int(ledger.lot_remaining[j]), created + dt.timedelta(seconds=EXPIRY_S),
                       False, created)

        await _write(conn, Lot.__table__, ["id", "member_id", "entry_id", "issuer_merchant_id", "points",
                                           "remaining", "expires_at", "reversed", "created_at"], lot_source(),
                     lambda done: report("lots", done, n_earn))
        rows["lots"] = n_earn

        def allocation_source() -> Iterable[tuple[Any, ...]]:
            for r, lot, pts in zip(ledger.alloc_redeem.tolist(), ledger.alloc_lot.tolist(),
                                   ledger.alloc_points.tolist(), strict=True):
                e = n_earn + r
                yield (int(entry_id[e]), int(lot_id[lot]), int(member_db[e]), int(merchant_of_entry[lot]),
                       int(merchant_of_entry[e]), "REDEEM", pts, entry_times[e])

        n_alloc = len(ledger.alloc_points)
        await _write(conn, Allocation.__table__, ["entry_id", "lot_id", "member_id", "issuer_merchant_id",
                                                  "merchant_id", "kind", "points", "created_at"],
                     allocation_source(), lambda done: report("allocations", done, n_alloc))
        rows["allocations"] = n_alloc
        if not sqlite:
            for table in ("members", "entries", "lots", "postings", "allocations", "merchants"):
                await conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))
    if not sqlite:
        # Statistics for what was just written: until autovacuum gets to it (it may be off, as on
        # the benchmark machine) the planner takes these tables for near-empty, and plans the
        # analysis's reads as a million index probes.
        async with db.transaction() as conn:
            await conn.execute(text("ANALYZE members, merchants, entries, holds, postings, lots, allocations"))
    return LoadedNetwork(merchant_ids, new_id[syn.ids], rows, time.perf_counter() - started)
