"""One incoming chunk stream fed to several writers at once, with bounded memory.

Each writer reads its own queue of at most `DEPTH` chunks, so a slow replica holds back the
upload (gRPC flow control then slows the client) instead of buffering the blob. A writer that
finishes early (the blob already existed) or fails is dropped and the others carry on; when
every writer is done the rest of the stream is left unread, as the single-shard path does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

DEPTH = 4


class _Branch:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(DEPTH)  # None ends the stream
        self.open = True

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self.queue.get()) is not None:
            yield chunk

    def close(self, _task: object = None) -> None:
        """The writer is done: unblock a producer waiting on this queue and stop feeding it."""
        self.open = False
        while not self.queue.empty():
            self.queue.get_nowait()


async def tee(source: AsyncIterator[bytes],
              writers: Sequence[Callable[[AsyncIterator[bytes]], Awaitable[T]]]) -> list[T | BaseException]:
    """Run every writer on its own copy of `source`; each outcome is a result or the exception.

    A failure of `source` itself (the client's stream) cancels every writer and is raised.
    """
    if len(writers) == 1:
        return [await _alone(source, writers[0])]
    branches = [_Branch() for _ in writers]
    tasks = [asyncio.ensure_future(write(branch.chunks())) for write, branch in zip(writers, branches, strict=True)]
    for task, branch in zip(tasks, branches, strict=True):
        task.add_done_callback(branch.close)
    try:
        async for chunk in source:
            if not chunk:
                continue
            if not any(b.open for b in branches):
                break
            for branch in branches:
                if branch.open:
                    await branch.queue.put(chunk)
        for branch in branches:
            if branch.open:
                await branch.queue.put(None)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return await asyncio.gather(*tasks, return_exceptions=True)


async def _alone(source: AsyncIterator[bytes],
                 write: Callable[[AsyncIterator[bytes]], Awaitable[T]]) -> T | BaseException:
    """One writer reads `source` itself: no task, no queue (the one-replica case, every small write
    of a one-shard cluster), with the same outcomes as a branch of `tee`."""
    failure: list[BaseException] = []

    async def watched() -> AsyncIterator[bytes]:
        try:
            async for chunk in source:
                if chunk:
                    yield chunk
        except BaseException as err:
            failure.append(err)
            raise

    try:
        return await write(watched())
    except BaseException as err:
        if failure:
            raise failure[0] from None  # the source failed, not the writer
        if not isinstance(err, Exception):
            raise
        return err
