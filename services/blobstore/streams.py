"""Helpers for the chunk streams every BlobAccess reads and writes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar, cast

from services.common.errors import InvalidArgument
from services.common.resources import Compressor, Digest

T = TypeVar("T")

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


async def once(data: bytes) -> AsyncIterator[bytes]:
    """A stream of one chunk: bytes at hand, for an interface that takes a stream."""
    yield data


async def gather(chunks: AsyncIterator[bytes], digest: Digest, compressor: Compressor) -> bytes:
    """A small upload's bytes, joined, refusing a stream longer than its digest allows (a zstd frame of
    incompressible data is slightly larger than the data)."""
    limit = digest.size if compressor is Compressor.IDENTITY else 2 * digest.size + 1024
    pieces: list[bytes] = []
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise InvalidArgument(f"blob {digest}: received more than the digest's {digest.size} bytes")
        pieces.append(chunk)
    return b"".join(pieces)


def closing(stream: AsyncIterator[T]) -> contextlib.aclosing[AsyncGenerator[T, None]]:
    """Close a stream this task iterates when leaving the block, cancelling its call at once.

    Every stream of a BlobAccess is an async generator, though typed as an iterator.
    """
    return contextlib.aclosing(cast(AsyncGenerator[T, None], stream))
