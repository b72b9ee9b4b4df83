"""The one small storage interface every blob backend and decorator implements.

As in Buildbarn's BlobAccess, behaviours compose (services.blobstore.stack builds the stacks): a
`local` disk store, a `remote` shard over internal gRPC, the `cluster` tier (placement, sharding,
replication) and decorators for the empty blob, completeness and metrics. Everything is async and
streams in bounded chunks; nothing holds a whole blob in memory except the batch calls, whose
total size the caller caps.

Blobs are always keyed by `Scope` (tenant, instance name and digest function) plus digest:
another tenant's blob, or the BLAKE3 blob of the same bytes as a SHA-256 one, is simply a
different key, so isolation needs no special case anywhere below the edge. A request has one
digest function (REAPI's `digest_function`), so it belongs to the scope, not to each digest.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from services.common.errors import ApiError, Unimplemented
from services.common.hashing import DigestFunction
from services.common.resources import SHA256, Compressor, Digest


@dataclass(frozen=True, slots=True)
class Scope:
    tenant: str
    instance_name: str = ""
    function: DigestFunction = SHA256  # how every digest of the scope is computed and verified


class Kind(enum.StrEnum):
    """What a key names: a content-addressed blob or an action result."""

    CAS = "cas"
    AC = "ac"


@dataclass(frozen=True, slots=True)
class Key:
    """A stored item of one scope: what copies, hints, repairs, listings and migration move."""

    scope: Scope
    kind: Kind
    digest: Digest


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
    existed: bool = False  # batch_write: stored before this call


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

    def list_keys(self) -> AsyncIterator[Key]:
        """Every stored key, least recently used first (a membership change moves them)."""
        raise Unimplemented(f"{type(self).__name__} cannot list its keys")

    async def ready(self) -> bool:
        """Whether the store can serve now (a shard answers its health check)."""
        return True

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

    def list_keys(self) -> AsyncIterator[Key]:
        return self.backend.list_keys()

    async def ready(self) -> bool:
        return await self.backend.ready()

    async def close(self) -> None:
        await self.backend.close()
