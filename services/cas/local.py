"""`local`: blobs and action results as files on this pod's disk, with an LRU size budget.

Layout under the data directory:
    v1/<tenant>/<instance>/cas/<hh>/<hash>-<size>    verified blob contents (uncompressed)
    v1/<tenant>/<instance>/ac/<hh>/<hash>-<size>     serialized ActionResult
    tmp/                                           uploads in progress (emptied at start)
`<instance>` is the instance name in unpadded base64url ("_" for the empty name), so any
instance name maps to exactly one directory and none can escape the tree.

A blob becomes visible only by rename after its size and SHA-256 were verified and the file
and directory were fsynced, so neither a bad upload nor a crash (kill -9) leaves a partial
blob. The index (key -> size, last use) lives in memory in LRU order and is rebuilt from file
mtimes at start; a use refreshes the mtime at most every `TOUCH_PERSIST_SECONDS`.
Eviction runs when the total passes the budget and frees down to the low-water mark, but never
removes anything used within `min_age_seconds` (Bazel assumes blobs it saw stay for hours):
if only young data is left, writes get RESOURCE_EXHAUSTED instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from services.cas import metrics
from services.common import zstd_pool
from services.common.blobaccess import BatchItem, BatchResult, BlobAccess, Scope, batches
from services.common.errors import ApiError, InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from services.common.resources import SHA256_EMPTY, Compressor, Digest

log = logging.getLogger(__name__)

READ_BLOCK = 1024 * 1024  # bytes read (and compressed) per thread hop
WRITE_BLOCK = 1024 * 1024  # bytes buffered from the network before one thread hop
TOUCH_PERSIST_SECONDS = 600  # a use is written to the file's mtime at most this often
_TENANT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_NAME = re.compile(r"([0-9a-f]{64})-(\d+)")


def instance_dir(instance_name: str) -> str:
    if not instance_name:
        return "_"
    return base64.urlsafe_b64encode(instance_name.encode()).decode().rstrip("=")


def instance_from_dir(name: str) -> str:
    if name == "_":
        return ""
    return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()


@dataclass(slots=True)
class _Entry:
    size: int
    used: float  # last use, seconds since the epoch
    persisted: float  # the mtime on disk


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A decoded index key, for listing (migration) and tests."""

    scope: Scope
    kind: str  # "cas" or "ac"
    digest: Digest


class _VerifyingSink:
    """Receives decompressed bytes: counts, hashes and writes them, refusing any overrun."""

    def __init__(self, file: BinaryIO, expected: Digest) -> None:
        self.file = file
        self.expected = expected
        self.count = 0
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.count += len(data)
        if self.count > self.expected.size:
            raise InvalidArgument(f"blob {self.expected}: received more than the digest's "
                                  f"{self.expected.size} bytes")
        self.sha.update(data)
        self.file.write(data)
        return len(data)

    def verify(self) -> None:
        if self.count != self.expected.size:
            raise InvalidArgument(f"blob {self.expected}: size mismatch, received {self.count} bytes "
                                  f"but the digest says {self.expected.size}")
        actual = self.sha.hexdigest()
        if actual != self.expected.hash:
            raise InvalidArgument(f"blob {self.expected}: hash mismatch, the data hashes to {actual}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobAccess(BlobAccess):
    def __init__(self, root: Path, max_size_bytes: int, low_water_fraction: float = 0.9,
                 min_age_seconds: float = 3 * 3600) -> None:
        self.store = root / "v1"
        self.tmp = root / "tmp"
        self.max_size = max_size_bytes
        self.low_water = int(max_size_bytes * low_water_fraction)
        self.min_age = min_age_seconds
        self._index: OrderedDict[str, _Entry] = OrderedDict()
        self._total = 0
        self._reserved = 0

    # ----- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the layout, drop abandoned uploads and rebuild the LRU index from disk."""
        entries = await asyncio.to_thread(self._scan)
        entries.sort(key=lambda item: item[2])
        self._index = OrderedDict((key, _Entry(size, mtime, mtime)) for key, size, mtime in entries)
        self._total = sum(size for _, size, _ in entries)
        self._publish_gauges()
        log.info("cas index rebuilt: %d entries, %d bytes", len(self._index), self._total)

    def _scan(self) -> list[tuple[str, int, float]]:
        self.store.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        found: list[tuple[str, int, float]] = []
        for dirpath, _dirs, files in os.walk(self.store):
            for name in files:
                if not _NAME.fullmatch(name):
                    continue
                full = os.path.join(dirpath, name)
                st = os.stat(full)
                found.append((os.path.relpath(full, self.store), st.st_size, st.st_mtime))
        return found

    # ----- keys --------------------------------------------------------------------------------

    def _key(self, scope: Scope, kind: str, digest: Digest) -> str:
        if not _TENANT.fullmatch(scope.tenant):
            raise InvalidArgument(f"invalid tenant name {scope.tenant!r}")
        instance = instance_dir(scope.instance_name)
        return f"{scope.tenant}/{instance}/{kind}/{digest.hash[:2]}/{digest.hash}-{digest.size}"

    def _path(self, key: str) -> Path:
        return self.store / key

    def keys(self) -> Iterator[StoredKey]:
        """Every stored key, least recently used first."""
        for key in list(self._index):
            tenant, inst, kind, _hh, name = key.split("/")
            match = _NAME.fullmatch(name)
            assert match is not None
            yield StoredKey(Scope(tenant, instance_from_dir(inst)), kind, Digest(match[1], int(match[2])))

    @property
    def total_bytes(self) -> int:
        return self._total

    # ----- recency -----------------------------------------------------------------------------

    def _touch(self, key: str, entry: _Entry, now: float, stale: list[str]) -> None:
        entry.used = now
        self._index.move_to_end(key)
        if now - entry.persisted >= TOUCH_PERSIST_SECONDS:
            entry.persisted = now
            stale.append(key)

    async def _persist_touches(self, keys: list[str]) -> None:
        if keys:
            await asyncio.to_thread(self._utime, keys)

    def _utime(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                os.utime(self._path(key))

    def _lookup(self, key: str) -> _Entry | None:
        return self._index.get(key)

    def _forget(self, key: str) -> None:
        entry = self._index.pop(key, None)
        if entry is not None:
            self._total -= entry.size
            self._publish_gauges()

    def _add(self, key: str, size: int) -> None:
        now = time.time()
        old = self._index.get(key)
        if old is not None:
            self._total -= old.size
        self._index[key] = _Entry(size, now, now)
        self._index.move_to_end(key)
        self._total += size
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        metrics.STORED_BYTES.set(self._total)
        metrics.STORED_ENTRIES.set(len(self._index))

    # ----- space -------------------------------------------------------------------------------

    async def _reserve(self, size: int) -> None:
        """Make room for `size` more bytes, evicting old data; refuse if only young data is left."""
        if self._total + self._reserved + size > self.max_size:
            await self._evict(min(self.low_water, self.max_size - self._reserved - size))
        if self._total + self._reserved + size > self.max_size:
            metrics.WRITES_REFUSED.inc()
            raise ResourceExhausted(
                f"cache full: {self._total + self._reserved} of {self.max_size} bytes are in use by data "
                f"used within the last {self.min_age:.0f}s; cannot store {size} more bytes")
        self._reserved += size

    async def _evict(self, target: int) -> None:
        cutoff = time.time() - self.min_age
        victims: list[str] = []
        freed = 0
        while self._index and self._total - freed > target:
            key, entry = next(iter(self._index.items()))
            if entry.used > cutoff:
                break  # LRU order: everything after this is younger still
            self._index.popitem(last=False)
            freed += entry.size
            victims.append(key)
        if not victims:
            return
        self._total -= freed
        self._publish_gauges()
        metrics.EVICTED_ENTRIES.inc(len(victims))
        metrics.EVICTED_BYTES.inc(freed)
        await asyncio.to_thread(self._unlink_all, victims)

    def _unlink_all(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()

    # ----- CAS ---------------------------------------------------------------------------------

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        now = time.time()
        missing: list[Digest] = []
        stale: list[str] = []
        for digest in digests:
            if digest.hash == SHA256_EMPTY and digest.size == 0:
                continue
            key = self._key(scope, "cas", digest)
            entry = self._lookup(key)
            if entry is None:
                missing.append(digest)
            else:
                self._touch(key, entry, now, stale)
        await self._persist_touches(stale)
        return missing

    async def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
                   compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        if offset < 0 or offset > digest.size:
            raise OutOfRange(f"read offset {offset} is outside blob {digest} (size {digest.size})")
        if limit < 0:
            raise InvalidArgument(f"read limit {limit} is negative")
        end = digest.size if limit == 0 else min(digest.size, offset + limit)
        key = self._key(scope, "cas", digest)
        if digest.size > 0:
            entry = self._lookup(key)
            if entry is None:
                raise NotFound(f"blob {digest} not found")
            stale: list[str] = []
            self._touch(key, entry, time.time(), stale)
            await self._persist_touches(stale)
        with contextlib.ExitStack() as stack:
            cobj = None
            if compressor is Compressor.ZSTD:
                cobj = stack.enter_context(zstd_pool.compressors.borrow()).compressobj(size=end - offset)
            file = None
            if end > offset:
                try:
                    file = await asyncio.to_thread(self._open_at, key, offset)
                except FileNotFoundError:
                    self._forget(key)
                    raise NotFound(f"blob {digest} not found") from None
                stack.callback(file.close)
            position = offset
            while position < end:
                assert file is not None
                want = min(READ_BLOCK, end - position)
                block = await asyncio.to_thread(self._read_block, file, want, cobj)
                if block[1] < want:
                    raise ApiError(f"blob {digest} is shorter on disk than its digest says")
                position += block[1]
                if block[0]:
                    yield block[0]
            if cobj is not None:
                tail = cobj.flush()
                if tail:
                    yield tail

    def _open_at(self, key: str, offset: int) -> BinaryIO:
        file = open(self._path(key), "rb", buffering=0)  # noqa: SIM115 - closed by the caller
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
        if digest.size == 0 and digest.hash == SHA256_EMPTY:
            return True
        key = self._key(scope, "cas", digest)
        entry = self._lookup(key)
        if entry is not None:
            stale: list[str] = []
            self._touch(key, entry, time.time(), stale)
            await self._persist_touches(stale)
            return True
        await self._reserve(digest.size)
        temp = self.tmp / uuid.uuid4().hex
        committed = False
        try:
            file = await asyncio.to_thread(open, temp, "wb")
            try:
                with contextlib.ExitStack() as stack:
                    sink = _VerifyingSink(file, digest)
                    target: _VerifyingSink | object = sink
                    if compressor is Compressor.ZSTD:
                        dctx = stack.enter_context(zstd_pool.decompressors.borrow())
                        target = dctx.stream_writer(cast(BinaryIO, sink), write_size=READ_BLOCK, closefd=False)
                    held: list[bytes] = []  # the last run goes with the finish: one thread hop for a small blob
                    async for batch in batches(chunks, WRITE_BLOCK):
                        if held:
                            await asyncio.to_thread(self._feed, target, held)
                        held = batch
                    await asyncio.to_thread(self._finish, target, held, sink, file, temp, key)
            finally:
                file.close()
            committed = True
        except _DecompressError as err:
            raise InvalidArgument(f"blob {digest}: zstd data is corrupt: {err}") from None
        finally:
            self._reserved -= digest.size
            if not committed:
                temp.unlink(missing_ok=True)
        self._add(key, digest.size)
        metrics.WRITTEN_BYTES.inc(digest.size)
        return False

    @staticmethod
    def _feed(target: object, pending: list[bytes]) -> None:
        try:
            for piece in pending:
                target.write(piece)  # type: ignore[attr-defined]
        except Exception as err:  # zstandard raises ZstdError for corrupt frames
            if isinstance(err, ApiError):
                raise
            raise _DecompressError(str(err)) from err

    def _finish(self, target: object, pending: list[bytes], sink: _VerifyingSink, file: BinaryIO,
                temp: Path, key: str) -> None:
        self._feed(target, pending)
        if target is not sink:
            try:
                target.flush()  # type: ignore[attr-defined]
            except Exception as err:
                raise _DecompressError(str(err)) from err
        sink.verify()
        file.flush()
        os.fsync(file.fileno())
        self._commit(temp, key)

    def _commit(self, temp: Path, key: str) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        _fsync_dir(final.parent)

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        keys = [self._key(scope, "cas", d) for d in digests]
        now = time.time()
        stale: list[str] = []
        present = []
        for key in keys:
            entry = self._lookup(key)
            if entry is not None:
                self._touch(key, entry, now, stale)
            present.append(entry is not None)
        results = await asyncio.to_thread(self._read_many, digests, keys, present, compressor)
        await self._persist_touches(stale)
        for key, result in zip(keys, results, strict=True):
            if isinstance(result.error, NotFound) and key in self._index:
                self._forget(key)  # the file vanished behind our back
        return results

    def _read_many(self, digests: Sequence[Digest], keys: list[str], present: list[bool],
                   compressor: Compressor) -> list[BatchResult]:
        results = []
        for digest, key, here in zip(digests, keys, present, strict=True):
            if digest.size == 0 and digest.hash == SHA256_EMPTY:
                data = b""
            elif not here:
                results.append(BatchResult(digest, error=NotFound(f"blob {digest} not found")))
                continue
            else:
                try:
                    data = self._path(key).read_bytes()
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
        return await self._delete(self._key(scope, "cas", digest))

    async def _delete(self, key: str) -> bool:
        if key not in self._index:
            return False
        self._forget(key)
        await asyncio.to_thread(self._unlink_all, [key])
        return True

    # ----- AC ----------------------------------------------------------------------------------

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        key = self._key(scope, "ac", action)
        entry = self._lookup(key)
        if entry is None:
            raise NotFound(f"no action result for {action}")
        try:
            data = await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            self._forget(key)
            raise NotFound(f"no action result for {action}") from None
        stale: list[str] = []
        self._touch(key, entry, time.time(), stale)
        await self._persist_touches(stale)
        return data

    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        key = self._key(scope, "ac", action)
        await self._reserve(len(result))
        try:
            await asyncio.to_thread(self._write_small, key, result)
        finally:
            self._reserved -= len(result)
        self._add(key, len(result))

    def _write_small(self, key: str, data: bytes) -> None:
        temp = self.tmp / uuid.uuid4().hex
        try:
            with open(temp, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            self._commit(temp, key)
        finally:
            temp.unlink(missing_ok=True)

    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        return await self._delete(self._key(scope, "ac", action))


class _DecompressError(Exception):
    pass


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def digest_of(data: bytes) -> Digest:
    """The SHA-256 digest of some bytes (tests, tools)."""
    return Digest(hashlib.sha256(data).hexdigest(), len(data))


__all__ = ["LocalBlobAccess", "StoredKey", "digest_of", "instance_dir", "instance_from_dir"]
