"""Blobs larger than the packed store takes: one file each, streamed in and out in large blocks.

An upload goes to a temporary file through the verifier (services.blobstore.local.verify); only
once its size and hash match and the file is fsynced is it renamed into place and the directory
fsynced, so a final path only ever names a whole, verified blob. A full disk (ENOSPC) is
RESOURCE_EXHAUSTED, with the temporary file removed like any failed upload's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, cast

from services.blobstore.local import volume
from services.blobstore.local.verify import DecompressError, VerifyingSink, feed, flush
from services.blobstore.streams import batches
from services.common import zstd_pool
from services.common.errors import ApiError, InvalidArgument
from services.common.hashing import DigestFunction
from services.common.resources import Compressor, Digest

READ_BLOCK = 1024 * 1024  # bytes read (and compressed) per thread hop
WRITE_BLOCK = 1024 * 1024  # bytes buffered from the network before one thread hop


async def read(path: Path, digest: Digest, offset: int, end: int, compressor: Compressor) -> AsyncIterator[bytes]:
    """Bytes [offset, end) of the blob at `path` (one zstd frame of them with ZSTD).

    FileNotFoundError before anything is yielded when the file is gone.
    """
    with contextlib.ExitStack() as stack:
        cobj = None
        if compressor is Compressor.ZSTD:
            cobj = stack.enter_context(zstd_pool.compressors.borrow()).compressobj(size=end - offset)
        if end > offset:
            file = await asyncio.to_thread(_open_at, path, offset)
            stack.callback(file.close)
            position = offset
            while position < end:
                want = min(READ_BLOCK, end - position)
                data, count = await asyncio.to_thread(_read_block, file, want, cobj)
                if count < want:
                    raise ApiError(f"blob {digest} is shorter on disk than its digest says")
                position += count
                if data:
                    yield data
        if cobj is not None:
            tail = cobj.flush()
            if tail:
                yield tail


def _open_at(path: Path, offset: int) -> BinaryIO:
    file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    file.seek(offset)
    return file


def _read_block(file: BinaryIO, size: int, cobj: object | None) -> tuple[bytes, int]:
    data = file.read(size)
    if cobj is None:
        return data, len(data)
    return cobj.compress(data), len(data)  # type: ignore[attr-defined]


async def write(temp: Path, final: Path, digest: Digest, chunks: AsyncIterator[bytes],
                compressor: Compressor, function: DigestFunction) -> None:
    """Verify (with `function`) and store an upload at `final`, durably; nothing is left behind if it fails."""
    committed = False
    try:
        file = await asyncio.to_thread(open, temp, "wb")
        try:
            with contextlib.ExitStack() as stack:
                sink = VerifyingSink(file, digest, function)
                target: VerifyingSink | object = sink
                if compressor is Compressor.ZSTD:
                    dctx = stack.enter_context(zstd_pool.decompressors.borrow())
                    target = dctx.stream_writer(cast(BinaryIO, sink), write_size=READ_BLOCK, closefd=False)
                held: list[bytes] = []  # the last run goes with the finish: one thread hop fewer
                async for batch in batches(chunks, WRITE_BLOCK):
                    if held:
                        await asyncio.to_thread(feed, target, held)
                    held = batch
                await asyncio.to_thread(_finish, target, held, sink, file, temp, final)
        finally:
            file.close()
        committed = True
    except DecompressError as err:
        raise InvalidArgument(f"blob {digest}: zstd data is corrupt: {err}") from None
    except OSError as err:
        if volume.is_full(err):
            raise volume.full(temp.parent, f"cannot store blob {digest}") from err
        raise
    finally:
        if not committed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def _finish(target: object, pending: list[bytes], sink: VerifyingSink, file: BinaryIO, temp: Path,
            final: Path) -> None:
    feed(target, pending)
    flush(target, sink)
    file.flush()
    os.fsync(file.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, final)
    _fsync_dir(final.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
