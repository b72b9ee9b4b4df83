"""Copying one key between members: the primitive of hand-off replay, read repair and migration."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from services.blobstore.access import BlobAccess, Key, Kind
from services.common.errors import NotFound

T = TypeVar("T")


async def copy(key: Key, source: BlobAccess, target: BlobAccess) -> bool:
    """Copy `key` unless the target has it; True if bytes moved. NotFound if the source lacks it.

    Blobs stream through with bounded memory. The target's call consumes the source stream in a
    task of its own, so the stream is not closed here: when the target stops early (it had the
    blob) the stream ends as it is released. An action result already on the target is left
    alone: it may be newer than the copy.
    """
    if key.kind is Kind.CAS:
        return not await target.write(key.scope, key.digest, source.read(key.scope, key.digest))
    try:
        await target.get_action_result(key.scope, key.digest)
        return False
    except NotFound:
        pass
    await target.put_action_result(key.scope, key.digest, await source.get_action_result(key.scope, key.digest))
    return True


async def for_each(items: Iterable[T], work: Callable[[T], Awaitable[None]], parallel: int) -> None:
    """Run `work` on every item, at most `parallel` at a time, without materialising all the calls."""
    shared = iter(items)

    async def worker() -> None:
        for item in shared:
            await work(item)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(parallel):
                group.create_task(worker())
    except BaseExceptionGroup as failed:  # the first failure stops the rest, as a plain loop would
        raise failed.exceptions[0] from None
