"""The one small storage interface every blob backend implements.

As in Buildbarn's BlobAccess, backends compose: the CAS service wraps a `local` disk store; the
gateway talks to shards through `remote` (internal gRPC), spreads keys with `sharded` (placement
and replicas) and checks action results with `completeness`. Everything is async and streams in
bounded chunks; nothing holds a whole blob in memory except the batch calls, whose total size
the caller caps.

Blobs are always keyed by `Scope` (tenant and instance name) plus digest: another tenant's blob
is simply a different key, so isolation needs no special case anywhere below the edge.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from services.common.errors import ApiError
from services.common.resources import Compressor, Digest

# Size of the messages a stream is cut into (slightly under 256 KiB leaves room for framing).
STREAM_CHUNK = 256 * 1024 - 1024


async def batches(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[list[bytes]]:
    """The chunks in runs of at least `size` bytes (the last may be shorter): uploads arrive in
    Bazel's 16 KiB messages, and per-message work (a network message, a thread hop) wants more."""
    pending: list[bytes] = []
    held = 0
    async for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield pending
            pending, held = [], 0
    if pending:
        yield pending


async def coalesce(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """The same bytes in blocks of at least `size`. Joining a block that is already large enough
    costs nothing, so coalescing twice is free."""
    async for batch in batches(chunks, size):
        yield b"".join(batch)


@dataclass(frozen=True, slots=True)
class Scope:
    tenant: str
    instance_name: str = ""


@dataclass(frozen=True, slots=True)
class BatchItem:
    digest: Digest
    data: bytes
    compressor: Compressor = Compressor.IDENTITY


@dataclass(frozen=True, slots=True)
class BatchResult:
    digest: Digest
    data: bytes = b""
    error: ApiError | None = None


class BlobAccess(abc.ABC):
    """Content-addressed blobs (CAS) and action results (AC) of many tenants."""

    @abc.abstractmethod
    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        """The digests not stored; present ones count as used (LRU refresh)."""

    @abc.abstractmethod
    def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
             compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        """Stream the blob from `offset` (in uncompressed bytes); `limit` 0 means to the end.

        With ZSTD the stream is one zstd frame of the selected range. Raises NotFound before
        yielding anything when the blob is absent.
        """

    @abc.abstractmethod
    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        """Store a blob, verified against `digest` after decompression, durably.

        Returns True when the blob was already present (the chunks may then be left unread);
        raises InvalidArgument on size or hash mismatch, leaving nothing behind.
        """

    @abc.abstractmethod
    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        """Small blobs in one call; a missing blob is a per-item NotFound."""

    @abc.abstractmethod
    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        """Small blobs in one call; each item succeeds or fails (verification) on its own."""

    @abc.abstractmethod
    async def delete(self, scope: Scope, digest: Digest) -> bool:
        """Remove a blob; True if it was present."""

    @abc.abstractmethod
    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        """The serialized ActionResult stored for an action digest, or NotFound."""

    @abc.abstractmethod
    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        """Store (replace) an action result durably."""

    @abc.abstractmethod
    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        """Remove an action result; True if it was present."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections or files."""


async def read_all(access: BlobAccess, scope: Scope, digest: Digest) -> bytes:
    """A whole (small) blob; for Tree and Directory messages, never for user data."""
    return b"".join([chunk async for chunk in access.read(scope, digest)])


class BlobAccessDecorator(BlobAccess):
    """Forwards everything to `backend`; decorators override only what they change."""

    def __init__(self, backend: BlobAccess) -> None:
        self.backend = backend

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        return await self.backend.find_missing(scope, digests)

    def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
             compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        return self.backend.read(scope, digest, offset, limit, compressor)

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        return await self.backend.write(scope, digest, chunks, compressor)

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        return await self.backend.batch_read(scope, digests, compressor)

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        return await self.backend.batch_write(scope, items)

    async def delete(self, scope: Scope, digest: Digest) -> bool:
        return await self.backend.delete(scope, digest)

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        return await self.backend.get_action_result(scope, action)

    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        await self.backend.put_action_result(scope, action, result)

    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        return await self.backend.delete_action_result(scope, action)

    async def close(self) -> None:
        await self.backend.close()
