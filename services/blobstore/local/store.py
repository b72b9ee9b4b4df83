"""`local`: blobs and action results as files on this machine's disk, within a size budget.

A blob becomes visible only by rename after its size and SHA-256 were verified and the file
and directory were fsynced, so neither a bad upload nor a crash (kill -9) leaves a partial
blob. The index (services.blobstore.local.index) is rebuilt from the files' mtimes at start
(services.blobstore.local.layout); a use refreshes the mtime at most every
`TOUCH_PERSIST_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO, cast

from services.blobstore.access import BatchItem, BatchResult, BlobAccess, Key, Kind, Scope
from services.blobstore.local import metrics
from services.blobstore.local.index import LruIndex
from services.blobstore.local.layout import Layout, key_of, name_of
from services.blobstore.local.verify import DecompressError, VerifyingSink, feed, flush
from services.blobstore.streams import batches
from services.common import zstd_pool
from services.common.errors import ApiError, InvalidArgument, NotFound, OutOfRange
from services.common.resources import Compressor, Digest

log = logging.getLogger(__name__)

READ_BLOCK = 1024 * 1024  # bytes read (and compressed) per thread hop
WRITE_BLOCK = 1024 * 1024  # bytes buffered from the network before one thread hop


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobAccess(BlobAccess):
    def __init__(self, root: Path, max_size_bytes: int, low_water_fraction: float = 0.9,
                 min_age_seconds: float = 3 * 3600) -> None:
        self.layout = Layout(root)
        self.index = LruIndex(max_size_bytes, low_water_fraction, min_age_seconds)

    async def start(self) -> None:
        """Create the layout, drop abandoned uploads and rebuild the LRU index from disk."""
        self.index.load(await asyncio.to_thread(self.layout.scan))
        self._publish_gauges()
        log.info("cas index rebuilt: %d entries, %d bytes", len(self.index), self.index.total)

    async def list_keys(self) -> AsyncIterator[Key]:
        for name in self.index.names():
            yield key_of(name)

    @property
    def total_bytes(self) -> int:
        return self.index.total

    # ----- bookkeeping -------------------------------------------------------------------------

    def _use(self, name: str, stale: list[str], now: float | None = None) -> bool:
        """Refresh `name` if stored (its mtime is due when added to `stale`); False if absent."""
        entry = self.index.get(name)
        if entry is None:
            return False
        if self.index.touch(name, entry, time.time() if now is None else now):
            stale.append(name)
        return True

    async def _persist(self, stale: list[str]) -> None:
        if stale:
            await asyncio.to_thread(self._utime, stale)

    def _utime(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.layout.path(name))

    def _forget(self, name: str) -> None:
        if self.index.forget(name):
            self._publish_gauges()

    def _publish_gauges(self) -> None:
        metrics.STORED_BYTES.set(self.index.total)
        metrics.STORED_ENTRIES.set(len(self.index))

    async def _reserve(self, size: int) -> None:
        """Make room for `size` more bytes, evicting old data; refuse if only young data is left."""
        victims = self.index.evict_for(size, time.time())
        if victims:
            self._publish_gauges()
            metrics.EVICTED_ENTRIES.inc(len(victims))
            metrics.EVICTED_BYTES.inc(sum(size for _, size in victims))
            await asyncio.to_thread(self._unlink_all, [name for name, _ in victims])
        try:
            self.index.reserve(size)
        except ApiError:
            metrics.WRITES_REFUSED.inc()
            raise

    def _stored(self, name: str, size: int) -> None:
        self.index.add(name, size, time.time())
        self._publish_gauges()

    def _unlink_all(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                self.layout.path(name).unlink()

    def _commit(self, temp: Path, name: str) -> None:
        final = self.layout.path(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        _fsync_dir(final.parent)

    # ----- CAS ---------------------------------------------------------------------------------

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        now = time.time()
        stale: list[str] = []
        missing = [d for d in digests if not self._use(name_of(scope, Kind.CAS, d), stale, now)]
        await self._persist(stale)
        return missing

    async def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
                   compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        if offset < 0 or offset > digest.size:
            raise OutOfRange(f"read offset {offset} is outside blob {digest} (size {digest.size})")
        if limit < 0:
            raise InvalidArgument(f"read limit {limit} is negative")
        end = digest.size if limit == 0 else min(digest.size, offset + limit)
        name = name_of(scope, Kind.CAS, digest)
        stale: list[str] = []
        if not self._use(name, stale):
            raise NotFound(f"blob {digest} not found")
        await self._persist(stale)
        with contextlib.ExitStack() as stack:
            cobj = None
            if compressor is Compressor.ZSTD:
                cobj = stack.enter_context(zstd_pool.compressors.borrow()).compressobj(size=end - offset)
            if end > offset:
                try:
                    file = await asyncio.to_thread(self._open_at, name, offset)
                except FileNotFoundError:
                    self._forget(name)
                    raise NotFound(f"blob {digest} not found") from None
                stack.callback(file.close)
                position = offset
                while position < end:
                    want = min(READ_BLOCK, end - position)
                    data, count = await asyncio.to_thread(self._read_block, file, want, cobj)
                    if count < want:
                        raise ApiError(f"blob {digest} is shorter on disk than its digest says")
                    position += count
                    if data:
                        yield data
            if cobj is not None:
                tail = cobj.flush()
                if tail:
                    yield tail

    def _open_at(self, name: str, offset: int) -> BinaryIO:
        file = open(self.layout.path(name), "rb", buffering=0)  # noqa: SIM115 - closed by the caller
        file.seek(offset)
        return file

    @staticmethod
    def _read_block(file: BinaryIO, size: int, cobj: object | None) -> tuple[bytes, int]:
        data = file.read(size)
        if cobj is None:
            return data, len(data)
        return cobj.compress(data), len(data)  # type: ignore[attr-defined]

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        name = name_of(scope, Kind.CAS, digest)
        stale: list[str] = []
        if self._use(name, stale):
            await self._persist(stale)
            return True
        await self._reserve(digest.size)
        temp = self.layout.temp()
        committed = False
        try:
            file = await asyncio.to_thread(open, temp, "wb")
            try:
                with contextlib.ExitStack() as stack:
                    sink = VerifyingSink(file, digest)
                    target: VerifyingSink | object = sink
                    if compressor is Compressor.ZSTD:
                        dctx = stack.enter_context(zstd_pool.decompressors.borrow())
                        target = dctx.stream_writer(cast(BinaryIO, sink), write_size=READ_BLOCK, closefd=False)
                    held: list[bytes] = []  # the last run goes with the finish: one thread hop for a small blob
                    async for batch in batches(chunks, WRITE_BLOCK):
                        if held:
                            await asyncio.to_thread(feed, target, held)
                        held = batch
                    await asyncio.to_thread(self._finish, target, held, sink, file, temp, name)
            finally:
                file.close()
            committed = True
        except DecompressError as err:
            raise InvalidArgument(f"blob {digest}: zstd data is corrupt: {err}") from None
        finally:
            self.index.release(digest.size)
            if not committed:
                temp.unlink(missing_ok=True)
        self._stored(name, digest.size)
        metrics.WRITTEN_BYTES.inc(digest.size)
        return False

    def _finish(self, target: object, pending: list[bytes], sink: VerifyingSink, file: BinaryIO,
                temp: Path, name: str) -> None:
        feed(target, pending)
        flush(target, sink)
        file.flush()
        os.fsync(file.fileno())
        self._commit(temp, name)

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        names = [name_of(scope, Kind.CAS, d) for d in digests]
        now = time.time()
        stale: list[str] = []
        present = [self._use(name, stale, now) for name in names]
        results = await asyncio.to_thread(self._read_many, digests, names, present, compressor)
        await self._persist(stale)
        for name, result in zip(names, results, strict=True):
            if isinstance(result.error, NotFound) and name in self.index:
                self._forget(name)  # the file vanished behind our back
        return results

    def _read_many(self, digests: Sequence[Digest], names: list[str], present: list[bool],
                   compressor: Compressor) -> list[BatchResult]:
        results = []
        for digest, name, here in zip(digests, names, present, strict=True):
            try:
                if not here:
                    raise FileNotFoundError(name)
                data = self.layout.path(name).read_bytes()
            except FileNotFoundError:
                results.append(BatchResult(digest, error=NotFound(f"blob {digest} not found")))
                continue
            if compressor is Compressor.ZSTD:
                data = zstd_pool.compress(data)
            results.append(BatchResult(digest, data))
        return results

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        results: list[BatchResult] = []
        for item in items:
            try:
                await self.write(scope, item.digest, _once(item.data), item.compressor)
                results.append(BatchResult(item.digest))
            except ApiError as err:
                results.append(BatchResult(item.digest, error=err))
        return results

    async def delete(self, scope: Scope, digest: Digest) -> bool:
        return await self._delete(name_of(scope, Kind.CAS, digest))

    async def _delete(self, name: str) -> bool:
        if name not in self.index:
            return False
        self._forget(name)
        await asyncio.to_thread(self._unlink_all, [name])
        return True

    # ----- AC ----------------------------------------------------------------------------------

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        name = name_of(scope, Kind.AC, action)
        stale: list[str] = []
        if not self._use(name, stale):
            raise NotFound(f"no action result for {action}")
        try:
            data = await asyncio.to_thread(self.layout.path(name).read_bytes)
        except FileNotFoundError:
            self._forget(name)
            raise NotFound(f"no action result for {action}") from None
        await self._persist(stale)
        return data

    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        name = name_of(scope, Kind.AC, action)
        await self._reserve(len(result))
        try:
            await asyncio.to_thread(self._write_small, name, result)
        finally:
            self.index.release(len(result))
        self._stored(name, len(result))

    def _write_small(self, name: str, data: bytes) -> None:
        temp = self.layout.temp()
        try:
            with open(temp, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            self._commit(temp, name)
        finally:
            temp.unlink(missing_ok=True)

    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        return await self._delete(name_of(scope, Kind.AC, action))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
