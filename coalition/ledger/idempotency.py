"""One way to write something once: the idempotent-write helper every keyed write uses.

A client that did not hear back from a write sends it again with the same idempotency key.
Every write that takes a key (ledger earns, redemptions, holds, captures, voids, reversals,
network bonuses; member enrollment; disputes; settlement runs; programs; gift cards; webhook
endpoints; onboarding a merchant and network policy versions, whose key is optional) answers by
one precedence of outcomes, the first that applies wins (the mutations that take no key, each
with why a retry leaves nothing more behind, are ``NATURALLY_IDEMPOTENT`` in
``coalition/graphql/core/mutations.py``):

1. **Replay.** Something stored under the key (within the key's scope: the merchant, the
   member, the network) by the same request (the same fingerprint, :func:`request_hash`):
   the earlier result, marked replayed, whatever the state is now. A ledger refusal kept
   under the key (:mod:`coalition.ledger.refusals`) is such a result and is raised again; a
   stored success wins over a kept refusal.
2. **Conflict.** Something stored under the key by other input: IDEMPOTENCY_KEY_CONFLICT.
3. **Suspended.** The writing merchant is not active: MERCHANT_SUSPENDED.
4. **Not found.** What the write names (member, hold, transaction, referral code...) does not
   exist or is not the caller's: its ``*_NOT_FOUND`` code (a hidden object answers like a
   missing one).
5. **The write's own refusals** (too few points, already reversed, contact already enrolled...).

Two shapes of write, one precedence:

- *Checked first*: :meth:`Outcomes.earlier` at the start of the transaction (1, 2), then
  :meth:`Outcomes.check_merchant` (3), then the write's lookups (4) and rules (5). A write that
  loses a race on the key's unique index (nothing inserted, or an IntegrityError) asks
  :meth:`Outcomes.explain`, which answers with the winner's result.
- *Written first* (the ledger's earn, redemption and authorization: one ``INSERT ... SELECT
  ... ON CONFLICT DO NOTHING`` that also requires the merchant active and the member found,
  ``core.insert_entry``; on PostgreSQL the fast path): nothing is looked up before the write,
  and only when nothing was inserted does :meth:`Outcomes.explain` say why, in the order
  above. The plain path pays no statement for idempotency.

A new kind of write (gift cards, vouchers, webhooks...) declares where its keys live, once::

    CARD_KEYS = KeyColumns(GiftCard, key="idempotency_key", fingerprint="request_hash",
                           scope=("merchant_id",))

(a unique index over scope + key in the table), fingerprints its input with
:func:`request_hash`, and in its transaction::

    outcomes = Outcomes(earlier=lambda: find_earlier(conn, CARD_KEYS, (merchant_id,), key, fingerprint),
                        executor=conn, merchant_id=merchant_id)
    if (earlier := await outcomes.earlier()) is not None:
        return replayed(earlier)
    await outcomes.check_merchant()
    card = await outcomes.found(await load_card(conn, card_id), CardNotFound(...))
    ...                                   # then the write's own refusals
    if not inserted:                      # lost the race on the key
        return replayed(await outcomes.explain(CardRaced(...)))

A definition created once per key (a reward, a stamp card, a quest, a campaign...) is the
*written first* shape in one call: :func:`insert_once` (``INSERT ... ON CONFLICT DO NOTHING``, then
:func:`find_earlier` when nothing was inserted). Keys a write makes for its own ledger entries
come from :func:`internal_key`, which no client key can equal.

``docs/architecture.md`` ("Idempotent writes") says the same for a newcomer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from coalition.db import Base
from coalition.errors import DomainError, IdempotencyKeyConflict
from coalition.ledger import rules
from coalition.ledger.errors import MerchantSuspended
from coalition.partners.models import Merchant

R = TypeVar("R")
T = TypeVar("T")
M = TypeVar("M", bound=Base)
Executor = AsyncConnection | AsyncSession


def request_hash(operation: str, **fields: Any) -> str:
    """Fingerprint of a request, to tell a retry from a different request under the same key."""
    canonical = json.dumps({"op": operation, **fields}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class KeyColumns(Generic[M]):
    """Where one kind of write keeps its keys: the table, its key column, the column that must
    match on a retry (the request's fingerprint, or any value that identifies the request), and
    the columns the key is unique within (``merchant_id`` None matches NULL: the network's own)."""

    model: type[M]
    key: str
    fingerprint: str
    scope: tuple[str, ...] = ()

    def where(self, scope: Sequence[Any], key: str) -> list[ColumnElement[bool]]:
        columns = self.model.__table__.c
        return [*(columns[name] == value for name, value in zip(self.scope, scope, strict=True)),
                columns[self.key] == key]


async def find_earlier(
    executor: Executor, keys: KeyColumns[M], scope: Sequence[Any], key: str, fingerprint: Any
) -> M | None:
    """What an earlier request stored under the key (outcome 1), or IDEMPOTENCY_KEY_CONFLICT when
    it came with other input (outcome 2). In a session, the object is the session's own."""
    query = select(keys.model).where(*keys.where(scope, key))
    found: M | None
    if isinstance(executor, AsyncSession):
        found = (await executor.execute(query)).scalars().first()
    else:
        row = (await executor.execute(query)).first()
        found = None if row is None else as_model(keys.model, row)
    if found is not None and getattr(found, keys.fingerprint) != fingerprint:
        raise IdempotencyKeyConflict(key)
    return found


def as_model(model: type[M], row: Any) -> M:
    """A table row as its model's object (what the API's types resolve), without a session."""
    return model.from_values(**row._mapping)


def internal_key(*parts: object) -> str:
    """A key a write uses under a merchant's (or the network's) key space for its own ledger entries.

    It starts with a control character, which ``check_idempotency_key`` refuses in every client key, so no
    client request can take (or block) it."""
    return "\x1f" + ":".join(str(part) for part in parts)


# Earns that are not a live purchase, told apart by what they were written under (the programs never
# stamp them: coalition/programs/catchup.py). No request hashes to IMPORTED_REQUEST_HASH (a real
# fingerprint is 64 hex digits), so no client earn can pass for an imported one.
IMPORTED_REQUEST_HASH = "import"  # every entry a member import wrote (coalition/portability)
GIFT_CARD_EARN_PREFIX = "gift-card-sale:"  # the key of the points a gift card sold to a member earned


async def insert_once(conn: AsyncConnection, keys: KeyColumns[M], values: dict[str, Any]) -> tuple[M, bool]:
    """Insert ``values`` (which hold the key, the fingerprint and the scope's columns) unless a row is
    under the key already: ``(the new row, True)``; a retry's ``(the earlier row, False)``; or
    IDEMPOTENCY_KEY_CONFLICT (other input under the key, or a clash on another unique column). The
    unique index decides between two concurrent requests, not a read before the write."""
    make_insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    table: Any = keys.model.__table__
    row = (await conn.execute(
        make_insert(table).values(**values).on_conflict_do_nothing().returning(*table.c)
    )).first()
    if row is not None:
        return as_model(keys.model, row), True
    key = values[keys.key]
    scope = [values[name] for name in keys.scope]
    earlier = await find_earlier(conn, keys, scope, key, values[keys.fingerprint])
    if earlier is None:  # a conflict on another unique column than the key's
        raise IdempotencyKeyConflict(key)
    return earlier, False


async def merchant_is_active(executor: Executor, merchant_id: int) -> bool:
    """Whether the merchant may write (``rules.merchant_may_write``, as every write's INSERT asks it)."""
    query = select(Merchant.id).where(Merchant.id == merchant_id, rules.merchant_may_write(Merchant.status))
    return (await executor.execute(query)).first() is not None


class Outcomes(Generic[R]):
    """The outcomes of one keyed write that come before its own, in the precedence above.

    ``earlier`` returns the earlier result under the key (and raises the conflict); ``merchant_id``
    (None: no merchant writes, as for a member's dispute or a settlement run) is the writer
    whose suspension comes next; ``action`` ends the MERCHANT_SUSPENDED message.
    """

    def __init__(
        self, *, earlier: Callable[[], Awaitable[R | None]], executor: Executor | None = None,
        merchant_id: int | None = None, action: str = "write to the ledger",
    ) -> None:
        self._earlier = earlier
        self._executor = executor
        self._merchant_id = merchant_id
        self._action = action
        self._merchant_active = merchant_id is None

    async def earlier(self) -> R | None:
        """Outcomes 1 and 2: the earlier result under the key, None, or IDEMPOTENCY_KEY_CONFLICT."""
        return await self._earlier()

    async def check_merchant(self) -> None:
        """Outcome 3: MERCHANT_SUSPENDED unless the writing merchant is active (asked once)."""
        if self._merchant_active:
            return
        assert self._executor is not None and self._merchant_id is not None
        if not await merchant_is_active(self._executor, self._merchant_id):
            raise MerchantSuspended(f"merchant {self._merchant_id} is suspended: it cannot {self._action}")
        self._merchant_active = True

    async def found(self, row: T | None, refusal: DomainError | Callable[[], Awaitable[DomainError]]) -> T:
        """Outcome 4: ``row``, what the write names, if it exists; else, unless the merchant is
        suspended (outcome 3), the not-found ``refusal`` (or the one the callable builds) is raised."""
        if row is not None:
            return row
        await self.check_merchant()
        raise refusal if isinstance(refusal, DomainError) else await refusal()

    async def explain(self, refusal: DomainError) -> R:
        """Why a write did not happen: the earlier result under the key (a retry, or the winner of a
        race on it) is returned; else a suspended merchant, else ``refusal`` (outcome 4 or 5) is raised."""
        earlier = await self._earlier()
        if earlier is not None:
            return earlier
        await self.check_merchant()
        raise refusal
