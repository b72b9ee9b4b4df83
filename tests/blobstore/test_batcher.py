"""Concurrent small calls to a shard leave together; a lone call leaves at once; failures stay per batch."""

from __future__ import annotations

import asyncio

import pytest

from services.blobstore.remote import batcher
from services.blobstore.remote.batcher import Batcher
from services.common.errors import Unavailable


class Recorder:
    """A batch call that answers each item doubled and remembers every batch it was given."""

    def __init__(self, fail_on: int | None = None, delay: float = 0.0) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.fail_on = fail_on
        self.delay = delay

    async def send(self, key: str, items: list[int]) -> list[int]:
        self.batches.append((key, items))
        await asyncio.sleep(self.delay)
        if self.fail_on in items:
            raise Unavailable("shard went away")
        return [item * 2 for item in items]


async def test_calls_made_together_leave_as_one_batch_per_key() -> None:
    recorder = Recorder()
    calls = Batcher(recorder.send, size=lambda item: 1, timeout=5)
    answers = await asyncio.gather(*(calls.submit("a", i) for i in range(5)), calls.submit("b", 7))
    assert answers == [0, 2, 4, 6, 8, 14]
    assert sorted(recorder.batches) == [("a", [0, 1, 2, 3, 4]), ("b", [7])]


async def test_calls_arriving_during_a_batch_form_the_next_one() -> None:
    recorder = Recorder(delay=0.05)
    calls = Batcher(recorder.send, size=lambda item: 1, timeout=5)
    first = asyncio.ensure_future(calls.submit("a", 1))
    await asyncio.sleep(0.01)  # the first batch is in flight
    later = await asyncio.gather(calls.submit("a", 2), calls.submit("a", 3))
    assert await first == 2 and list(later) == [4, 6]
    assert recorder.batches == [("a", [1]), ("a", [2, 3])]


async def test_batches_stay_within_the_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batcher, "MAX_BATCH_BYTES", 10)
    recorder = Recorder()
    calls = Batcher(recorder.send, size=lambda item: item, timeout=5)
    assert await asyncio.gather(*(calls.submit("a", 4) for _ in range(5))) == [8] * 5
    assert [items for _, items in recorder.batches] == [[4, 4], [4, 4], [4]]
    assert await calls.submit("a", 50) == 100  # an item over the limit still goes, alone


async def test_a_failed_batch_fails_its_calls_only() -> None:
    recorder = Recorder(fail_on=3, delay=0.02)
    calls = Batcher(recorder.send, size=lambda item: 1, timeout=5)
    first = asyncio.ensure_future(asyncio.gather(calls.submit("a", 1), calls.submit("a", 3),
                                                 return_exceptions=True))
    await asyncio.sleep(0.01)
    assert await calls.submit("a", 5) == 10  # the next batch is unaffected
    assert [type(outcome) for outcome in await first] == [Unavailable, Unavailable]  # one batch, one fate
    assert [items for _, items in recorder.batches] == [[1, 3], [5]]


async def test_a_hanging_batch_times_out_and_later_calls_still_go() -> None:
    recorder = Recorder(delay=10)
    calls = Batcher(recorder.send, size=lambda item: 1, timeout=0.05)
    with pytest.raises(TimeoutError):
        await calls.submit("a", 1)
    recorder.delay = 0
    assert await calls.submit("a", 2) == 4


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    recorder = Recorder(delay=0.05)
    calls = Batcher(recorder.send, size=lambda item: 1, timeout=5)
    impatient = asyncio.ensure_future(calls.submit("a", 1))
    patient = asyncio.ensure_future(calls.submit("a", 2))
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert await patient == 4
    await calls.close()
