"""A value read from the database that a process's requests share: :class:`Refreshed`.

The earn and redeem paths ask several per-process caches on every request (the tier policy,
the running campaigns, the stamp cards and quests, the webhook endpoints, the network
policy). Each is re-read every few seconds. Done naively (every request that finds the value
expired reads it again), all the requests in flight read it at once: under load a worker's
16 requests each took a pooled connection for a BEGIN/SELECT/ROLLBACK, every second or two,
per cache (docs/benchmarks-journal.md, finding 10). Here one read runs at a time:

- a value that has merely aged past ``ttl_s`` is re-read by the caller that finds it so; the
  callers that come while that read runs take the value they have (it was current at most
  ``ttl_s`` plus one read ago), so no request waits for another's read;
- a value that must not be used (none yet, :meth:`Refreshed.invalidate` called by a write in
  this process, or a new ``generation``) is waited for: one read, every caller gets its result.

A read that fails raises in the caller that ran it and leaves the value as it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def _no_generation() -> int:
    return 0


class Refreshed(Generic[T]):
    """``load()``'s result, re-read at most every ``ttl_s`` seconds, one read at a time.

    ``generation``: a counter that a write in this process moves on (e.g. a policy stored); a
    value read under an older one is not used again.
    """

    def __init__(self, load: Callable[[], Awaitable[T]], ttl_s: float,
                 generation: Callable[[], int] = _no_generation) -> None:
        self._load, self.ttl_s, self._generation_now = load, ttl_s, generation
        self._value: T | None = None
        self._invalidated = 0  # invalidate() calls
        self._read_under: tuple[int, int] | None = None  # (generation, invalidations) the value was read under
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """This process changed what the value is read from: the next caller waits for a new read
        (a read already under way when this is called does not count)."""
        self._invalidated += 1

    def _now(self) -> tuple[int, int]:
        return self._generation_now(), self._invalidated

    def _usable(self) -> bool:
        return self._read_under == self._now()

    async def get(self) -> T:
        if self._usable() and time.monotonic() - self._read_at <= self.ttl_s:
            return self._value  # type: ignore[return-value]
        if self._usable() and self._lock.locked():
            return self._value  # type: ignore[return-value]  # aged: another caller is reading it again
        async with self._lock:
            if not self._usable() or time.monotonic() - self._read_at > self.ttl_s:
                under, started = self._now(), time.monotonic()
                self._value = await self._load()
                self._read_under, self._read_at = under, started
            return self._value  # type: ignore[return-value]
