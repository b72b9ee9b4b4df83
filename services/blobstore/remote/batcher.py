"""Concurrent small calls to one shard leave as one batch call.

A build uploads an action's outputs at once and downloads them at once: a dozen small blobs
for the same shard, each of which would cost an internal call of its own (per-call work on both
sides of the hop, far more than the bytes). Calls that arrive while the previous batch for the
same key (scope, compressor) is in flight wait for it and then leave together, as the local
store's group commit does for the disk: no timer, so a lone call goes out at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - an item
O = TypeVar("O")  # noqa: E741 - its outcome

MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_BATCH_ITEMS = 1000


class Batcher(Generic[K, I, O]):
    def __init__(self, send: Callable[[K, list[I]], Awaitable[list[O]]], size: Callable[[I], int],
                 timeout: float) -> None:
        self._send = send
        self._size = size
        self.timeout = timeout  # a batch call that hangs must not hold every later call behind it
        self._queues: dict[K, list[tuple[I, asyncio.Future[O]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: K, item: I) -> O:
        """The item's outcome, from the batch it went out in (a failed batch fails every item)."""
        future: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = []
            task = asyncio.create_task(self._drain(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((item, future))
        return await future

    async def _drain(self, key: K, queue: list[tuple[I, asyncio.Future[O]]]) -> None:
        try:
            while queue:
                batch = _take(queue, self._size)
                futures = [future for _, future in batch]
                try:
                    async with asyncio.timeout(self.timeout):
                        outcomes = await self._send(key, [item for item, _ in batch])
                except BaseException as err:
                    for future in futures:
                        if not future.done():
                            future.set_exception(err)
                    if not isinstance(err, Exception):
                        raise
                    continue
                for future, outcome in zip(futures, outcomes, strict=True):
                    if not future.done():  # its caller may have given up (cancelled)
                        future.set_result(outcome)
        finally:
            del self._queues[key]
            for _, future in queue:  # left behind by a cancelled drain (the client is closing)
                future.cancel()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _take(queue: list[tuple[I, asyncio.Future[O]]], size: Callable[[I], int]) -> list[tuple[I, asyncio.Future[O]]]:
    """The oldest items up to the batch limits (at least one), removed from the queue."""
    count, total = 0, 0
    for item, _ in queue:
        if count and (count >= MAX_BATCH_ITEMS or total + size(item) > MAX_BATCH_BYTES):
            break
        count += 1
        total += size(item)
    batch = queue[:count]
    del queue[:count]
    return batch
