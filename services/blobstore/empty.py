"""`empty`: the empty blob exists in every scope, always, and is never stored.

REAPI clients may ask for it without uploading it first (Bazel does, for empty outputs), so every
layer below this decorator can assume a digest names real bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from services.blobstore.access import BatchItem, BatchResult, BlobAccessDecorator, Scope
from services.common import zstd_pool
from services.common.errors import InvalidArgument, OutOfRange
from services.common.hashing import EMPTY_HASH
from services.common.resources import Compressor, Digest


def is_empty(scope: Scope, digest: Digest) -> bool:
    return digest.size == 0 and digest.hash == EMPTY_HASH[scope.function]


def _empty_data(compressor: Compressor) -> bytes:
    return zstd_pool.compress(b"") if compressor is Compressor.ZSTD else b""


class EmptyBlobHandling(BlobAccessDecorator):
    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        empty = EMPTY_HASH[scope.function]
        stored = [d for d in digests if d.size or d.hash != empty]  # is_empty, inline: thousands per call
        return await self.backend.find_missing(scope, stored) if stored else []

    def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
             compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        if is_empty(scope, digest):
            return self._read_empty(offset, limit, compressor)
        return self.backend.read(scope, digest, offset, limit, compressor)

    @staticmethod
    async def _read_empty(offset: int, limit: int, compressor: Compressor) -> AsyncIterator[bytes]:
        if offset != 0:
            raise OutOfRange(f"read offset {offset} is outside the empty blob")
        if limit < 0:
            raise InvalidArgument(f"read limit {limit} is negative")
        data = _empty_data(compressor)
        if data:
            yield data

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        if is_empty(scope, digest):
            return True
        return await self.backend.write(scope, digest, chunks, compressor)

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        stored = [d for d in digests if not is_empty(scope, d)]
        answers = iter(await self.backend.batch_read(scope, stored, compressor) if stored else [])
        return [BatchResult(d, _empty_data(compressor)) if is_empty(scope, d) else next(answers) for d in digests]

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        empty = EMPTY_HASH[scope.function]
        stored = [item for item in items if item.digest.size or item.digest.hash != empty]  # is_empty, inline
        if stored and len(stored) == len(items):  # none empty: the backend's answers are the answers
            return await self.backend.batch_write(scope, items)
        answers = iter(await self.backend.batch_write(scope, stored) if stored else [])
        return [BatchResult(item.digest) if is_empty(scope, item.digest) else next(answers) for item in items]
