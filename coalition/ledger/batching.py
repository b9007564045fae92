"""Concurrent calls of one statement, gathered into batches that each run as one statement.

A write statement pays a fixed cost per execution on both sides of the connection (the
driver's round trip and, in PostgreSQL, executor start-up, a transaction, a commit and its
WAL flush) that is several times what one more row of the same statement costs. Under load
a worker has many earns in flight at once, so :class:`Batcher` lets up to ``max_in_flight``
batches run at a time and gathers the calls that arrive meanwhile into the next one ("natural
batching"): a lone call runs at once, on its own; under load each execution carries many.

Calls with the same key (the member) never share a batch, and a call waits while a running
batch holds its key, so one process never races itself on a member.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Runs ``run(items)`` over batches of concurrently submitted items.

    ``run`` returns one result per item, in order. An exception it raises goes to every
    caller of that batch.
    """

    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        key: Callable[[Item], Hashable],
        *,
        max_in_flight: int,
        max_size: int,
    ) -> None:
        if max_in_flight < 1 or max_size < 1:
            raise ValueError(f"a batcher needs max_in_flight and max_size >= 1, not {max_in_flight}, {max_size}")
        self._run = run
        self._key = key
        self.max_in_flight = max_in_flight
        self.max_size = max_size
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._busy: set[Hashable] = set()
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._start()
        return await future

    def _start(self) -> None:
        while len(self._running) < self.max_in_flight and self._waiting:
            batch = self._take()
            if not batch:
                return  # every waiting call's key is held by a running batch
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._running.add(task)

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[Hashable] = set()
        left: list[tuple[Item, asyncio.Future[Result]]] = []
        for item, future in self._waiting:
            if future.done():  # its caller was cancelled while it waited
                continue
            key = self._key(item)
            if len(batch) < self.max_size and key not in keys and key not in self._busy:
                batch.append((item, future))
                keys.add(key)
            else:
                left.append((item, future))
        self._waiting = left
        self._busy |= keys
        return batch

    async def _execute(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} items gave {len(results)} results")
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._busy.difference_update(self._key(item) for item, _ in batch)
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            self._start()
