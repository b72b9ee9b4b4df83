"""Group commit: small items become durable together, one database commit per group.

Writing a small blob alone costs a file, a rename and journal commits of its own, one blob after
another. Most of a real build's outputs are small, and Bazel sends them in batches or as many
concurrent uploads, so they are committed in groups instead: every item of a group is verified,
then all are stored in one transaction of the packed store (services.blobstore.local.packed),
whose commit makes them durable. Only then is any of them acknowledged (and entered in the
index, which is what makes an item visible to readers). A crash at any point leaves each item of
the group either absent or complete.

Requests that arrive while a group is being committed form the next group.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field

from services.blobstore.local.packed import PackedStore
from services.common import zstd_pool
from services.common.errors import ApiError, InvalidArgument
from services.common.hashing import DigestFunction, hash_hex
from services.common.resources import SHA256, Compressor, Digest


@dataclass
class Pending:
    """One small item to commit: a CAS blob to verify against `digest`, or an action result (None)."""

    name: str
    data: bytes
    digest: Digest | None = None
    compressor: Compressor = Compressor.IDENTITY
    function: DigestFunction = SHA256
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def verified(item: Pending) -> bytes:
    """The item's bytes, decompressed and checked against its digest."""
    data = item.data
    if item.digest is None:
        return data
    expected = item.digest
    if item.compressor is Compressor.ZSTD:
        try:
            with zstd_pool.decompressors.borrow() as dctx, dctx.stream_reader(io.BytesIO(data)) as reader:
                data = reader.read(expected.size + 1)  # a decompression bomb stops right past the digest's size
        except Exception as err:  # zstandard raises ZstdError for corrupt frames
            raise InvalidArgument(f"blob {expected}: zstd data is corrupt: {err}") from None
    if len(data) > expected.size:
        raise InvalidArgument(f"blob {expected}: received more than the digest's {expected.size} bytes")
    if len(data) != expected.size:
        raise InvalidArgument(f"blob {expected}: size mismatch, received {len(data)} bytes but the digest says "
                              f"{expected.size}")
    actual = hash_hex(item.function, data)
    if actual != expected.hash:
        raise InvalidArgument(f"blob {expected}: hash mismatch, the data hashes to {actual}")
    return data


class GroupCommitter:
    def __init__(self, packed: PackedStore) -> None:
        self.packed = packed
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def commit(self, items: list[Pending]) -> list[BaseException | None]:
        """Commit the items (in the next group); each one's outcome: None when durable, or its error."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        self._queue.extend(items)
        self._wake.set()
        return list(await asyncio.gather(*(item.done for item in items), return_exceptions=True))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            group, self._queue = self._queue, []
            try:
                outcomes = await asyncio.to_thread(self._write, group)
            except Exception as err:  # a failed sync fails the whole group: nothing is acknowledged
                outcomes = [err] * len(group)
            except BaseException:
                for item in group:
                    item.done.cancel()
                raise
            for item, outcome in zip(group, outcomes, strict=True):
                if item.done.done():
                    continue
                if outcome is None:
                    item.done.set_result(None)
                else:
                    item.done.set_exception(outcome)

    def _write(self, group: list[Pending]) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        accepted: list[tuple[str, bytes]] = []
        for item in group:
            try:
                accepted.append((item.name, verified(item)))
                outcomes.append(None)
            except ApiError as err:
                outcomes.append(err)
        if accepted:
            self.packed.put(accepted, time.time())
        return outcomes

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
