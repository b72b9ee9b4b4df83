"""A full disk on a real (tmpfs) volume: the budget shrinks to the volume, a write that still meets
ENOSPC is RESOURCE_EXHAUSTED and leaves nothing, and the store writes again once space is back."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.blobstore.access import BatchItem, Scope, read_all
from services.blobstore.local.store import SMALL_BLOB, LocalBlobAccess
from services.blobstore.local.verify import digest_of
from services.blobstore.local.volume import free_bytes
from services.common import zstd_pool
from services.common.errors import ResourceExhausted
from services.common.resources import Compressor
from tests.support.volumes import fill, small_volume

A = Scope("tenant-a")
MiB = 1024 * 1024


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    with small_volume(tmp_path / "volume", "8m") as path:
        yield path


async def open_store(volume: Path, min_age: float = 0, min_free: int = 256 * 1024) -> LocalBlobAccess:
    store = LocalBlobAccess(volume / "cas", 1 << 40, 0.9, min_age, min_free)
    await store.start()
    return store


def packed_names(store: LocalBlobAccess) -> set[str]:
    return {name for name, _size, _used, _seq in store.packed.scan(0)}


async def stale_reading(store: LocalBlobAccess) -> None:
    """Read free space once and keep that reading: a disk filled afterwards is met by the write itself."""
    await store.write(A, digest_of(b"first"), chunks(b"first"))
    store.volume.refresh_seconds = math.inf


async def test_a_file_write_meeting_enospc_leaves_nothing_and_writes_resume(volume: Path) -> None:
    store = await open_store(volume)
    try:
        await stale_reading(store)
        filler = fill(volume, leave=512 * 1024)
        stored_before = store.total_bytes
        data = os.urandom(2 * MiB)
        for compressor, payload in ((Compressor.IDENTITY, data), (Compressor.ZSTD, zstd_pool.compress(data))):
            with pytest.raises(ResourceExhausted, match="disk full"):
                await store.write(A, digest_of(data), chunks(payload), compressor)
            assert list(store.layout.tmp.iterdir()) == []  # no temp file left
            assert await store.find_missing(A, [digest_of(data)]) == [digest_of(data)]
            assert store.total_bytes == stored_before and store.index.reserved == 0
        filler.unlink()
        assert await store.write(A, digest_of(data), chunks(data)) is False
        assert await read_all(store, A, digest_of(data)) == data
    finally:
        await store.close()


async def test_packed_writes_meeting_enospc_leave_no_item_and_resume(volume: Path) -> None:
    store = await open_store(volume)
    try:
        await stale_reading(store)
        before = packed_names(store)
        filler = fill(volume, leave=300 * 1024)
        blobs = [os.urandom(SMALL_BLOB - 1000) for _ in range(4)]
        with pytest.raises(ResourceExhausted, match="disk full"):
            await store.put_action_result(A, digest_of(b"action"), os.urandom(400 * 1024))
        results = await store.batch_write(A, [BatchItem(digest_of(b), b) for b in blobs])
        assert all(isinstance(r.error, ResourceExhausted) and "disk full" in r.error.message for r in results)
        assert packed_names(store) == before  # nothing half-committed in the database
        assert await store.find_missing(A, [digest_of(b) for b in blobs]) == [digest_of(b) for b in blobs]
        assert store.index.reserved == 0
        filler.unlink()
        results = await store.batch_write(A, [BatchItem(digest_of(b), b) for b in blobs])
        assert [r.error for r in results] == [None] * len(blobs)
        assert [r.data for r in await store.batch_read(A, [digest_of(b) for b in blobs])] == blobs
        await store.put_action_result(A, digest_of(b"action"), b"result")
        assert await store.get_action_result(A, digest_of(b"action")) == b"result"
    finally:
        await store.close()


@pytest.mark.parametrize("size", [MiB, 100 * 1024], ids=["files", "packed"])
async def test_the_budget_shrinks_to_the_volume_so_eviction_comes_first(volume: Path, size: int) -> None:
    """A budget far larger than the volume: old data is evicted to make room, never a full disk."""
    store = await open_store(volume, min_free=MiB)
    try:
        written = [os.urandom(size) for _ in range(3 * 8 * MiB // size)]  # three volumes' worth
        for data in written:
            assert await store.write(A, digest_of(data), chunks(data)) is False
            assert free_bytes(volume) >= MiB // 2
        assert await read_all(store, A, digest_of(written[-1])) == written[-1]
        budget = REGISTRY.get_sample_value("bbapi_cas_budget_bytes")
        assert budget is not None and budget <= 8 * MiB - MiB  # capped far below the configured 1 TiB
        missing = await store.find_missing(A, [digest_of(d) for d in written])
        assert digest_of(written[0]) in missing and digest_of(written[-1]) not in missing
    finally:
        await store.close()


async def test_young_data_on_a_full_volume_is_refused_before_the_disk_fills(volume: Path) -> None:
    store = await open_store(volume, min_age=3600, min_free=MiB)
    try:
        with pytest.raises(ResourceExhausted, match="cache full"):
            for _ in range(10):
                data = os.urandom(MiB)
                await store.write(A, digest_of(data), chunks(data))
        assert free_bytes(volume) >= MiB // 2 and list(store.layout.tmp.iterdir()) == []
    finally:
        await store.close()
