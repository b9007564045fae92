"""``Refreshed``: the per-process caches of the earn and redeem paths read one at a time."""

from __future__ import annotations

import asyncio

import pytest

from coalition.caching import Refreshed


class Source:
    """A value behind a read that the test lets finish (``gate``), counting the reads."""

    def __init__(self) -> None:
        self.value = 1
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def load(self) -> int:
        self.reads += 1
        value = self.value  # what the database holds when the read starts
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("the database went away")
        return value


async def test_callers_that_find_no_value_wait_for_one_read() -> None:
    source = Source()
    source.gate.clear()
    cache = Refreshed(source.load, ttl_s=60)
    callers = [asyncio.create_task(cache.get()) for _ in range(16)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in callers)
    source.gate.set()
    assert await asyncio.gather(*callers) == [1] * 16
    assert source.reads == 1


async def test_an_aged_value_is_read_again_by_one_caller_while_the_others_take_the_old_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("coalition.caching.time.monotonic", lambda: clock[0])
    source = Source()
    cache = Refreshed(source.load, ttl_s=2)
    assert await cache.get() == 1
    source.value = 2
    clock[0] += 1
    assert await cache.get() == 1 and source.reads == 1  # within ttl_s: no read
    clock[0] += 2
    source.gate.clear()
    reader = asyncio.create_task(cache.get())
    await asyncio.sleep(0)
    # While that read runs, 15 more callers answer at once with the value they have.
    assert [await cache.get() for _ in range(15)] == [1] * 15
    assert not reader.done() and source.reads == 2
    source.gate.set()
    assert await reader == 2
    assert await cache.get() == 2 and source.reads == 2


async def test_invalidate_makes_the_next_caller_wait_for_a_read_that_began_after_it() -> None:
    source = Source()
    cache = Refreshed(source.load, ttl_s=60)
    assert await cache.get() == 1
    source.gate.clear()
    cache.invalidate()
    early = asyncio.create_task(cache.get())  # starts a read of the value before the write below
    await asyncio.sleep(0)
    source.value = 2
    cache.invalidate()  # the write is committed: the read under way does not count
    source.gate.set()
    assert await early == 1
    assert await cache.get() == 2
    assert source.reads == 3


async def test_a_new_generation_is_waited_for() -> None:
    generation = [0]
    source = Source()
    cache = Refreshed(source.load, ttl_s=60, generation=lambda: generation[0])
    assert await cache.get() == 1
    source.value, generation[0] = 2, 1
    assert await cache.get() == 2
    assert await cache.get() == 2 and source.reads == 2


async def test_a_failed_read_raises_in_its_caller_and_keeps_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("coalition.caching.time.monotonic", lambda: clock[0])
    source = Source()
    cache = Refreshed(source.load, ttl_s=1)
    assert await cache.get() == 1
    clock[0] += 5
    source.fail = True
    with pytest.raises(ConnectionError):
        await cache.get()
    source.fail, source.value = False, 3
    assert await cache.get() == 3  # the next caller reads again
    assert source.reads == 3
