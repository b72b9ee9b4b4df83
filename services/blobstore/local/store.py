"""`local`: blobs and action results as files on this machine's disk, within a size budget.

Small items (CAS blobs up to `SMALL_BLOB`: most of a build's outputs, and every action result)
live in the packed store (services.blobstore.local.packed) and are committed in groups
(services.blobstore.local.commit); larger blobs stream to a file of their own, which becomes
visible by rename once verified and fsynced. Either way an item is in the index, and so visible,
only once durable, and neither a bad upload nor a crash (kill -9) leaves a partial one.

The index (services.blobstore.local.index) is rebuilt at start from the files' mtimes and the
packed items' recorded last use; a use is persisted at most every `TOUCH_PERSIST_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from itertools import compress
from operator import not_
from pathlib import Path

from services.blobstore.access import BatchItem, BatchResult, BlobAccess, Key, Kind, Scope
from services.blobstore.local import files, metrics
from services.blobstore.local.commit import GroupCommitter, Pending
from services.blobstore.local.index import LruIndex
from services.blobstore.local.layout import Layout, key_of, name_in, name_of, prefix_of
from services.blobstore.local.packed import PackedStore
from services.blobstore.local.volume import DEFAULT_MIN_FREE, VolumeBudget
from services.blobstore.streams import gather, once
from services.common import zstd_pool
from services.common.errors import ApiError, InvalidArgument, NotFound, OutOfRange
from services.common.resources import Compressor, Digest

log = logging.getLogger(__name__)

SMALL_BLOB = 256 * 1024  # blobs up to this size are gathered in memory, packed and committed in groups
PACKED_DIR = "packed"


class LocalBlobAccess(BlobAccess):
    def __init__(self, root: Path, max_size_bytes: int, low_water_fraction: float = 0.9,
                 min_age_seconds: float = 3 * 3600, min_free_bytes: int = DEFAULT_MIN_FREE) -> None:
        self.layout = Layout(root)
        self.index = LruIndex(max_size_bytes, low_water_fraction, min_age_seconds)
        (root / PACKED_DIR).mkdir(parents=True, exist_ok=True)
        self.packed = PackedStore(root / PACKED_DIR, max_size_bytes)
        self.committer = GroupCommitter(self.packed)
        self.volume = VolumeBudget(root, max_size_bytes, min_free_bytes, self.packed.spare_bytes)

    async def start(self) -> None:
        """Create the layout, drop abandoned uploads and rebuild the LRU index from disk."""
        self.index.load(await asyncio.to_thread(self._scan))
        self._publish_gauges()
        self._cap_budget(0)
        log.info("cas index rebuilt: %d entries, %d bytes; budget %d bytes (configured %d, capped by the volume)",
                 len(self.index), self.index.total, self.index.max_size, self.volume.configured)

    async def list_keys(self) -> AsyncIterator[Key]:
        for name in self.index.names():
            yield key_of(name)

    def _scan(self) -> list[tuple[str, int, float, int]]:
        return [(name, size, used, 0) for name, size, used in self.layout.scan()] + self.packed.scan(time.time())

    async def close(self) -> None:
        await self.committer.close()
        self.packed.close()

    @property
    def total_bytes(self) -> int:
        return self.index.total

    # ----- bookkeeping -------------------------------------------------------------------------

    def _use(self, name: str, stale: list[tuple[str, int]], now: float | None = None) -> int | None:
        """Refresh `name` if stored (its last use is due to be written when added to `stale`): its
        sequence number in the packed store (0: a file), None if absent."""
        used = self.index.use(name, time.time() if now is None else now)
        if used is None:
            return None
        due, seq = used
        if due:
            stale.append((name, seq))
        return seq

    async def _persist(self, stale: list[tuple[str, int]]) -> None:
        if stale:
            await asyncio.to_thread(self._utime, stale)

    def _utime(self, stale: list[tuple[str, int]]) -> None:
        self.packed.touch([seq for _, seq in stale if seq], time.time())
        for name, seq in stale:
            if not seq:
                with contextlib.suppress(FileNotFoundError):
                    os.utime(self.layout.path(name))

    def _forget(self, name: str, seq: int | None = None) -> int | None:
        """Drop `name` from the index (only if stored under `seq`, when given); its sequence number."""
        forgotten = self.index.forget(name, seq)
        if forgotten is not None:
            self._publish_gauges()
        return forgotten

    def _publish_gauges(self) -> None:
        metrics.STORED_BYTES.set(self.index.total)
        metrics.STORED_ENTRIES.set(len(self.index))

    def _cap_budget(self, wanted: int) -> None:
        """Set the budget for `wanted` more bytes: the configured one, capped by the volume."""
        self.index.set_max_size(self.volume.limit(self.index.total, wanted))
        metrics.BUDGET_BYTES.set(self.index.max_size)

    async def _reserve(self, size: int) -> None:
        """Make room for `size` more bytes, evicting old data; refuse if only young data is left."""
        await self._make_room(size)
        try:
            self.index.reserve(size)
        except ApiError:
            metrics.WRITES_REFUSED.inc()
            raise

    async def _make_room(self, size: int) -> None:
        self._cap_budget(self.index.reserved + size)
        victims = self.index.evict_for(size, time.time())
        if victims:
            self._publish_gauges()
            metrics.EVICTED_ENTRIES.inc(len(victims))
            metrics.EVICTED_BYTES.inc(sum(size for _, size, _ in victims))
            await asyncio.to_thread(self._unlink_all, [(name, seq) for name, _, seq in victims])

    async def _stored(self, written: Sequence[tuple[str, int, int]]) -> None:
        """Index what became durable (name, size, sequence number): one gauge update and one counter
        step per write or group. A packed copy a new one replaced (two uploads of one blob at once) goes."""
        if not written:
            return
        now = time.time()
        replaced = [old for old in (self.index.add(name, size, now, seq) for name, size, seq in written) if old]
        self._publish_gauges()
        metrics.WRITTEN_BYTES.inc(sum(size for _, size, _ in written))
        if replaced:
            await asyncio.to_thread(self.packed.delete, replaced)

    def _unlink_all(self, stored: list[tuple[str, int]]) -> None:
        """Delete items by (name, sequence number): packed ones by number, files by name."""
        self.packed.delete([seq for _, seq in stored if seq])
        for name, seq in stored:
            if not seq:
                with contextlib.suppress(FileNotFoundError):
                    self.layout.path(name).unlink()

    # ----- CAS ---------------------------------------------------------------------------------

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        now = time.time()
        stale: list[tuple[str, int]] = []
        present = self.index.use_many(prefix_of(scope, Kind.CAS), digests, now, stale)
        await self._persist(stale)
        return list(compress(digests, map(not_, present)))

    async def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
                   compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        if offset < 0 or offset > digest.size:
            raise OutOfRange(f"read offset {offset} is outside blob {digest} (size {digest.size})")
        if limit < 0:
            raise InvalidArgument(f"read limit {limit} is negative")
        end = digest.size if limit == 0 else min(digest.size, offset + limit)
        name = name_of(scope, Kind.CAS, digest)
        stale: list[tuple[str, int]] = []
        seq = self._use(name, stale)
        if seq is None:
            raise NotFound(f"blob {digest} not found")
        await self._persist(stale)
        if seq:
            data = self._get_packed(name, seq)
            if data is None:
                raise NotFound(f"blob {digest} not found")
            data = data[offset:end]
            yield zstd_pool.compress(data) if compressor is Compressor.ZSTD else data
            return
        try:
            async for data in files.read(self.layout.path(name), digest, offset, end, compressor):
                yield data
        except FileNotFoundError:
            self._forget(name)
            raise NotFound(f"blob {digest} not found") from None

    def _get_packed(self, name: str, seq: int) -> bytes | None:
        """A packed item's bytes; None (and forgotten) if it vanished behind the index's back.

        Read on the event loop: an item is at most SMALL_BLOB bytes copied out of LMDB's memory map
        (the page cache, for a cache that is in use), which costs less than a hop to a thread and back.
        """
        (data,) = self.packed.get([seq])
        if data is None:
            self._forget(name, seq)  # unless a newer copy replaced it meanwhile
        return data

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        name = name_of(scope, Kind.CAS, digest)
        stale: list[tuple[str, int]] = []
        if self._use(name, stale) is not None:
            await self._persist(stale)
            return True
        if digest.size <= SMALL_BLOB:
            data = await gather(chunks, digest, compressor)
            pending = Pending(name, data, digest, compressor, scope.function)
            (error,) = await self._commit_group([pending], [digest.size])
            if error is not None:
                raise error
            return False
        await self._reserve(digest.size)
        try:
            await files.write(self.layout.temp(), self.layout.path(name), digest, chunks, compressor, scope.function)
        finally:
            self.index.release(digest.size)
        await self._stored([(name, digest.size, 0)])
        return False

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        prefix = prefix_of(scope, Kind.CAS)
        names = [name_in(prefix, d) for d in digests]
        now = time.time()
        stale: list[tuple[str, int]] = []
        seqs = [self._use(name, stale, now) for name in names]
        results = await asyncio.to_thread(self._read_many, digests, names, seqs, compressor)
        await self._persist(stale)
        for name, seq, result in zip(names, seqs, results, strict=True):
            if isinstance(result.error, NotFound) and seq is not None:
                self._forget(name, seq)  # it vanished behind our back
        return results

    def _read_many(self, digests: Sequence[Digest], names: list[str], seqs: list[int | None],
                   compressor: Compressor) -> list[BatchResult]:
        packed = {i: seq for i, seq in enumerate(seqs) if seq}
        found = dict(zip(packed, self.packed.get(list(packed.values())), strict=True))
        results = []
        for index, (digest, name, seq) in enumerate(zip(digests, names, seqs, strict=True)):
            data = found.get(index)
            if data is None and seq == 0:
                with contextlib.suppress(FileNotFoundError):
                    data = self.layout.path(name).read_bytes()
            if data is None:
                results.append(BatchResult(digest, error=NotFound(f"blob {digest} not found")))
                continue
            if compressor is Compressor.ZSTD:
                data = zstd_pool.compress(data)
            results.append(BatchResult(digest, data))
        return results

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        """Every new small item in one group commit; a larger one (rare in a batch) on its own."""
        errors: list[ApiError | None] = [None] * len(items)
        existed = [False] * len(items)
        prefix = prefix_of(scope, Kind.CAS)
        small = [index for index, item in enumerate(items) if item.digest.size <= SMALL_BLOB]
        for index in [index for index, item in enumerate(items) if item.digest.size > SMALL_BLOB]:
            try:
                existed[index] = await self.write(scope, items[index].digest, once(items[index].data),
                                                  items[index].compressor)
            except ApiError as err:
                errors[index] = err
        stale: list[tuple[str, int]] = []
        present = self.index.use_many(prefix, [items[i].digest for i in small], time.time(), stale)
        await self._persist(stale)
        group: list[int] = []
        for index, here in zip(small, present, strict=True):
            existed[index] = here
            if not here:
                group.append(index)
        pending = [Pending(name_in(prefix, items[i].digest), items[i].data, items[i].digest, items[i].compressor,
                           scope.function) for i in group]
        for index, error in zip(group, await self._commit_group(pending, [items[i].digest.size for i in group]),
                                strict=True):
            errors[index] = error
        return [BatchResult(item.digest, error=error, existed=there)
                for item, error, there in zip(items, errors, existed, strict=True)]

    async def _commit_group(self, items: list[Pending], sizes: list[int]) -> list[ApiError | None]:
        """Reserve room for the items, commit them together, index the ones that became durable."""
        errors: list[ApiError | None] = [None] * len(items)
        admitted = await self._admit(sizes, errors)
        try:
            outcomes = await self.committer.commit([items[i] for i in admitted])
        finally:
            self.index.release(sum(sizes[i] for i in admitted))
        stored: list[tuple[str, int, int]] = []
        for index, outcome in zip(admitted, outcomes, strict=True):
            if isinstance(outcome, int):
                stored.append((items[index].name, sizes[index], outcome))
            elif isinstance(outcome, ApiError):
                errors[index] = outcome
            else:
                raise outcome  # the disk failed (the whole group did): nothing was acknowledged
        await self._stored(stored)
        return errors

    async def _admit(self, sizes: list[int], errors: list[ApiError | None]) -> list[int]:
        """Reserve room for the items of a group: all at once when they fit, else one by one (refusals in `errors`)."""
        total = sum(sizes)
        await self._make_room(total)
        if self.index.room_for(total):
            self.index.reserve(total)
            return list(range(len(sizes)))
        admitted: list[int] = []
        for index, size in enumerate(sizes):
            try:
                await self._reserve(size)
                admitted.append(index)
            except ApiError as err:
                errors[index] = err
        return admitted

    async def delete(self, scope: Scope, digest: Digest) -> bool:
        return await self._delete(name_of(scope, Kind.CAS, digest))

    async def _delete(self, name: str) -> bool:
        seq = self._forget(name)
        if seq is None:
            return False
        await asyncio.to_thread(self._unlink_all, [(name, seq)])
        return True

    # ----- AC ----------------------------------------------------------------------------------

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        name = name_of(scope, Kind.AC, action)
        stale: list[tuple[str, int]] = []
        seq = self._use(name, stale)
        if not seq:  # action results are always packed
            raise NotFound(f"no action result for {action}")
        data = self._get_packed(name, seq)
        if data is None:
            raise NotFound(f"no action result for {action}")
        await self._persist(stale)
        return data

    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        (error,) = await self._commit_group([Pending(name_of(scope, Kind.AC, action), result)], [len(result)])
        if error is not None:
            raise error

    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        return await self._delete(name_of(scope, Kind.AC, action))

