"""Batcher: concurrent calls gathered into batches, a key at most once in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from coalition.ledger.batching import Batcher


class Recorder:
    """A batch runner that records each batch and waits for ``release`` before it answers."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.running = 0
        self.most_running = 0
        self.keys_running: set[str] = set()
        self.overlaps: list[set[str]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def run(self, items: Sequence[tuple[str, int]]) -> list[int]:
        keys = {key for key, _ in items}
        if keys & self.keys_running:
            self.overlaps.append(keys & self.keys_running)
        self.batches.append(list(items))
        self.keys_running |= keys
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0)
            await self.release.wait()
            return [value * 10 for _, value in items]
        finally:
            self.running -= 1
            self.keys_running -= keys


def batcher(recorder: Recorder, *, max_in_flight: int = 1, max_size: int = 32) -> Batcher[tuple[str, int], int]:
    return Batcher(recorder.run, lambda item: item[0], max_in_flight=max_in_flight, max_size=max_size)


async def test_a_lone_call_runs_at_once_and_calls_that_arrive_meanwhile_go_together() -> None:
    recorder = Recorder()
    calls = batcher(recorder)
    assert await calls.submit(("a", 1)) == 10
    # while one batch runs, eight calls arrive; they go in the next batch, in order
    recorder.release.clear()
    first = asyncio.create_task(calls.submit(("a", 2)))
    await asyncio.sleep(0)
    later = [asyncio.create_task(calls.submit((f"m{i}", i))) for i in range(8)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 20
    assert await asyncio.gather(*later) == [i * 10 for i in range(8)]
    assert recorder.batches == [[("a", 1)], [("a", 2)], [(f"m{i}", i) for i in range(8)]]
    assert recorder.most_running == 1


async def test_one_key_is_never_in_two_batches_at_once() -> None:
    recorder = Recorder()
    calls = batcher(recorder, max_in_flight=4)
    results = await asyncio.gather(*(calls.submit((key, n)) for n in range(6) for key in ("x", "y")))
    assert sorted(results) == sorted(n * 10 for n in range(6) for _ in ("x", "y"))
    # each batch holds x and y at most once, and no two running batches held the same key
    assert all(len({key for key, _ in batch}) == len(batch) for batch in recorder.batches)
    assert sum(len(batch) for batch in recorder.batches) == 12
    assert recorder.overlaps == [] and recorder.most_running == 2


async def test_batches_keep_to_their_size_and_to_max_in_flight() -> None:
    recorder = Recorder()
    recorder.release.clear()
    calls = batcher(recorder, max_in_flight=2, max_size=3)
    tasks = [asyncio.create_task(calls.submit((f"m{i}", i))) for i in range(10)]
    await asyncio.sleep(0.01)
    assert recorder.running == 2
    recorder.release.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(10)]
    assert [len(batch) for batch in recorder.batches] == [1, 1, 3, 3, 2]
    assert recorder.most_running == 2


async def test_an_error_reaches_every_caller_of_its_batch_and_later_batches_run() -> None:
    failing = True

    async def run(items: Sequence[tuple[str, int]]) -> list[int]:
        await asyncio.sleep(0)
        if failing:
            raise LookupError("the database said no")
        return [value for _, value in items]

    calls: Batcher[tuple[str, int], int] = Batcher(run, lambda item: item[0], max_in_flight=1, max_size=8)
    outcomes = await asyncio.gather(*(calls.submit((f"m{i}", i)) for i in range(3)), return_exceptions=True)
    assert [type(o) for o in outcomes] == [LookupError] * 3
    failing = False
    assert await calls.submit(("m0", 7)) == 7


async def test_a_result_count_that_does_not_match_the_batch_is_an_error() -> None:
    async def run(items: Sequence[tuple[str, int]]) -> list[int]:
        return []

    calls: Batcher[tuple[str, int], int] = Batcher(run, lambda item: item[0], max_in_flight=1, max_size=8)
    with pytest.raises(RuntimeError, match="a batch of 1 items gave 0 results"):
        await calls.submit(("m0", 1))


async def test_a_caller_cancelled_while_waiting_is_left_out() -> None:
    recorder = Recorder()
    recorder.release.clear()
    calls = batcher(recorder)
    first = asyncio.create_task(calls.submit(("a", 1)))
    await asyncio.sleep(0)
    gone = asyncio.create_task(calls.submit(("b", 2)))
    kept = asyncio.create_task(calls.submit(("c", 3)))
    await asyncio.sleep(0)
    gone.cancel()
    recorder.release.set()
    assert (await first, await kept) == (10, 30)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert recorder.batches == [[("a", 1)], [("c", 3)]]


def test_a_batcher_needs_room_for_one() -> None:
    with pytest.raises(ValueError, match="max_in_flight and max_size >= 1"):
        Batcher(Recorder().run, lambda item: item[0], max_in_flight=0, max_size=1)
