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
from dataclasses import dataclass

from services.blobstore.local.packed import PackedStore
from services.common import zstd_pool
from services.common.errors import ApiError, InvalidArgument
from services.common.hashing import DigestFunction, hash_hex
from services.common.resources import SHA256, Compressor, Digest


@dataclass(slots=True)
class Pending:
    """One small item to commit: a CAS blob to verify against `digest`, or an action result (None)."""

    name: str
    data: bytes
    digest: Digest | None = None
    compressor: Compressor = Compressor.IDENTITY
    function: DigestFunction = SHA256


# An int: durable, under that sequence number of the packed store; else why not (ApiError: this
# item; anything else: the whole group)
Outcome = BaseException | int


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
    """Callers queue lists of items; each list gets one future for all its outcomes (a batch of a
    thousand blobs is one wake-up, not a thousand)."""

    def __init__(self, packed: PackedStore) -> None:
        self.packed = packed
        self._queue: list[tuple[list[Pending], asyncio.Future[list[Outcome]]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def commit(self, items: list[Pending]) -> list[Outcome]:
        """Commit the items (in the next group); each one's outcome: its sequence number when durable, or its error."""
        if not items:
            return []
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        done: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, done))
        self._wake.set()
        return await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batches, self._queue = self._queue, []
            group = [item for items, _ in batches for item in items]
            try:
                outcomes: list[Outcome] = list(await asyncio.to_thread(self._write, group))
            except Exception as err:  # a failed sync fails the whole group: nothing is acknowledged
                outcomes = [err] * len(group)
            except BaseException:
                for _, done in batches:
                    done.cancel()
                raise
            start = 0
            for items, done in batches:
                if not done.done():
                    done.set_result(outcomes[start:start + len(items)])
                start += len(items)

    def _write(self, group: list[Pending]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        accepted: list[tuple[str, bytes]] = []
        for item in group:
            try:
                accepted.append((item.name, verified(item)))
                outcomes.append(len(accepted) - 1)
            except ApiError as err:
                outcomes.append(err)
        if not accepted:
            return outcomes
        seqs = self.packed.put(accepted, time.time())
        return [seqs[outcome] if isinstance(outcome, int) else outcome for outcome in outcomes]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
