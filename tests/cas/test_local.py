"""The local disk store: verification, atomicity, zstd, LRU eviction and restart recovery."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zstandard

from services.blobstore import stack as blobstore
from services.blobstore.access import BatchItem, Kind, Scope, read_all
from services.blobstore.local.layout import name_of
from services.blobstore.local.store import SMALL_BLOB, LocalBlobAccess
from services.blobstore.local.verify import digest_of
from services.common.errors import InvalidArgument, NotFound, OutOfRange, ResourceExhausted
from services.common.resources import SHA256_EMPTY, Compressor, Digest

A = Scope("tenant-a")
B = Scope("tenant-b")


async def chunks(data: bytes, size: int = 16384) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def make(tmp_path: Path, max_size: int = 1 << 30, low_water_fraction: float = 0.9,
               min_age_seconds: float = 3 * 3600) -> LocalBlobAccess:
    store = LocalBlobAccess(tmp_path, max_size, low_water_fraction, min_age_seconds)
    await store.start()
    return store


async def test_write_then_read_roundtrip_in_pieces(tmp_path: Path) -> None:
    store = await make(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = digest_of(data)
    assert await store.write(A, digest, chunks(data)) is False
    assert await read_all(store, A, digest) == data
    tail = b"".join([c async for c in store.read(A, digest, offset=1000, limit=5000)])
    assert tail == data[1000:6000]
    assert await store.write(A, digest, chunks(data)) is True  # second write: already there


async def test_mismatched_size_and_hash_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    store = await make(tmp_path)
    data = b"hello world" * 1000
    wrong_size = Digest(digest_of(data).hash, len(data) + 1)
    with pytest.raises(InvalidArgument, match="size mismatch"):
        await store.write(A, wrong_size, chunks(data))
    wrong_hash = Digest("0" * 64, len(data))
    with pytest.raises(InvalidArgument, match="hash mismatch"):
        await store.write(A, wrong_hash, chunks(data))
    too_short = Digest(digest_of(data).hash, len(data) - 5)
    with pytest.raises(InvalidArgument, match="more than"):
        await store.write(A, too_short, chunks(data))
    assert await store.find_missing(A, [wrong_size, wrong_hash, too_short]) == [wrong_size, wrong_hash, too_short]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert store.total_bytes == 0


async def test_zstd_upload_is_verified_after_decompression_and_served_both_ways(tmp_path: Path) -> None:
    store = await make(tmp_path)
    data = b"abcdefgh" * 300_000
    digest = digest_of(data)
    compressed = zstandard.ZstdCompressor(level=3).compress(data)
    assert len(compressed) < len(data) // 10
    await store.write(A, digest, chunks(compressed, 4096), Compressor.ZSTD)
    assert await read_all(store, A, digest) == data
    zstd_stream = b"".join([c async for c in store.read(A, digest, compressor=Compressor.ZSTD)])
    assert zstandard.ZstdDecompressor().decompress(zstd_stream) == data
    ranged = b"".join([c async for c in store.read(A, digest, offset=10, compressor=Compressor.ZSTD)])
    assert zstandard.ZstdDecompressor().decompress(ranged) == data[10:]
    # zstd bytes that decompress to something else are rejected like any wrong upload
    other = zstandard.ZstdCompressor().compress(b"not the same data")
    second = digest_of(b"x" * 17)
    with pytest.raises(InvalidArgument):
        await store.write(A, second, chunks(other), Compressor.ZSTD)
    with pytest.raises(InvalidArgument, match="corrupt"):
        await store.write(A, second, chunks(b"\x28\xb5\x2f\xfd garbage"), Compressor.ZSTD)


async def test_a_decompression_bomb_stops_at_the_declared_size(tmp_path: Path) -> None:
    store = await make(tmp_path)
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (64 << 20))
    small = Digest(digest_of(b"\0" * 1000).hash, 1000)
    with pytest.raises(InvalidArgument, match="more than"):
        await store.write(A, small, chunks(bomb), Compressor.ZSTD)


async def test_tenants_and_instances_are_separate(tmp_path: Path) -> None:
    store = await make(tmp_path)
    data = b"secret build output"
    digest = digest_of(data)
    await store.write(A, digest, chunks(data))
    assert await store.find_missing(A, [digest]) == []
    assert await store.find_missing(B, [digest]) == [digest]
    assert await store.find_missing(Scope("tenant-a", "other/instance"), [digest]) == [digest]
    with pytest.raises(NotFound):
        await read_all(store, B, digest)


async def test_empty_blob_is_always_present(tmp_path: Path) -> None:
    store = blobstore.shard(await make(tmp_path))  # the empty blob is the shard stack's decorator's
    empty = Digest(SHA256_EMPTY, 0)
    other = digest_of(b"stored")
    assert await store.find_missing(B, [empty, other]) == [other]
    assert await read_all(store, B, empty) == b""
    zstd = b"".join([chunk async for chunk in store.read(B, empty, compressor=Compressor.ZSTD)])
    assert zstandard.ZstdDecompressor().decompress(zstd) == b""
    assert await store.write(B, empty, chunks(b"")) is True
    await store.write(B, other, chunks(b"stored"))
    results = await store.batch_read(B, [empty, other, empty])
    assert [(r.error, r.data) for r in results] == [(None, b""), (None, b"stored"), (None, b"")]
    written = await store.batch_write(B, [BatchItem(empty, b""), BatchItem(digest_of(b"x"), b"x")])
    assert [r.error for r in written] == [None, None]
    assert empty not in [k.digest async for k in store.list_keys()]


async def test_bad_offsets(tmp_path: Path) -> None:
    store = await make(tmp_path)
    data = b"0123456789"
    digest = digest_of(data)
    await store.write(A, digest, chunks(data))
    with pytest.raises(OutOfRange):
        await read_all_from(store, digest, offset=-1)
    with pytest.raises(OutOfRange):
        await read_all_from(store, digest, offset=11)
    assert await read_all_from(store, digest, offset=10) == b""


async def read_all_from(store: LocalBlobAccess, digest: Digest, offset: int) -> bytes:
    return b"".join([c async for c in store.read(A, digest, offset=offset)])


async def test_cancelled_upload_leaves_no_temp_file_and_no_blob(tmp_path: Path) -> None:
    store = await make(tmp_path)
    data = os.urandom(4 << 20)
    digest = digest_of(data)
    started = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield data[: 2 << 20]
        started.set()
        await asyncio.sleep(3600)
        yield data[2 << 20:]

    task = asyncio.create_task(store.write(A, digest, stalled()))
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((tmp_path / "tmp").iterdir()) == []
    assert await store.find_missing(A, [digest]) == [digest]
    assert store.total_bytes == 0


async def test_eviction_frees_to_low_water_but_spares_young_blobs(tmp_path: Path) -> None:
    store = await make(tmp_path, max_size=10_000, low_water_fraction=0.5, min_age_seconds=3600)
    blobs = [bytes([i]) * 3000 for i in range(3)]
    for blob in blobs:
        await store.write(A, digest_of(blob), chunks(blob))
    # everything is young: a fourth blob does not fit and nothing may be evicted
    fourth = b"\x09" * 3000
    with pytest.raises(ResourceExhausted, match="cache full"):
        await store.write(A, digest_of(fourth), chunks(fourth))
    # age the first two (as if written long ago), then use the first one again
    for name in list(store.index.names())[:2]:
        used = store.index.used(name)
        assert used is not None
        store.index.set_used(name, used - 7200)
    assert await store.find_missing(A, [digest_of(blobs[0])]) == []
    await store.write(A, digest_of(fourth), chunks(fourth))
    missing = await store.find_missing(A, [digest_of(b) for b in [*blobs, fourth]])
    assert missing == [digest_of(blobs[1])]  # the least recently used old blob went
    assert store.total_bytes == 9000
    assert name_of(A, Kind.CAS, digest_of(blobs[1])) not in {name for name, *_ in store.packed.scan(0)}


@pytest.mark.parametrize("size", [4000, 300_000], ids=["packed", "files"])
async def test_restart_rebuilds_index_in_lru_order_and_drops_partial_uploads(tmp_path: Path, size: int) -> None:
    budget = 2 * size + 2000
    store = await make(tmp_path, max_size=budget, low_water_fraction=0.6, min_age_seconds=0)
    old, new = b"o" * size, b"n" * size
    await store.write(A, digest_of(old), chunks(old))
    await store.write(A, digest_of(new), chunks(new))
    past = time.time() - 1000
    name = name_of(A, Kind.CAS, digest_of(old))
    if size <= SMALL_BLOB:  # as if its last use had been recorded long ago
        (seq,) = (seq for stored, _size, _used, seq in store.packed.scan(0) if stored == name)
        store.packed.touch([seq], past)
    else:
        os.utime(tmp_path / "v1" / name, (past, past))
    (tmp_path / "tmp" / "abandoned-upload").write_bytes(b"partial")
    await store.put_action_result(A, digest_of(b"action"), b"result-bytes")
    await store.close()

    reopened = await make(tmp_path, max_size=budget, low_water_fraction=0.6, min_age_seconds=0)
    assert not (tmp_path / "tmp" / "abandoned-upload").exists()
    assert reopened.total_bytes == 2 * size + len(b"result-bytes")
    assert await reopened.get_action_result(A, digest_of(b"action")) == b"result-bytes"
    third = b"t" * size
    await reopened.write(A, digest_of(third), chunks(third))
    # the older blob (by its recorded last use) was evicted first
    assert await reopened.find_missing(A, [digest_of(old), digest_of(new)]) == [digest_of(old)]
    assert await read_all(reopened, A, digest_of(new)) == new


async def test_batches_and_action_results(tmp_path: Path) -> None:
    store = await make(tmp_path)
    good, bad = b"good data", b"bad data"
    results = await store.batch_write(A, [
        BatchItem(digest_of(good), good),
        BatchItem(Digest(digest_of(bad).hash, 3), bad),
        BatchItem(digest_of(b"z" * 100), zstandard.ZstdCompressor().compress(b"z" * 100), Compressor.ZSTD),
    ])
    assert [r.error is None for r in results] == [True, False, True]
    assert isinstance(results[1].error, InvalidArgument)
    read = await store.batch_read(A, [digest_of(good), digest_of(bad), digest_of(b"z" * 100)])
    assert read[0].data == good
    assert isinstance(read[1].error, NotFound)
    assert read[2].data == b"z" * 100

    action = digest_of(b"some action")
    with pytest.raises(NotFound):
        await store.get_action_result(A, action)
    await store.put_action_result(A, action, b"v1")
    await store.put_action_result(A, action, b"v2-longer")
    assert await store.get_action_result(A, action) == b"v2-longer"
    with pytest.raises(NotFound):
        await store.get_action_result(B, action)
    assert await store.delete_action_result(A, action) is True
    assert await store.delete_action_result(A, action) is False
    assert await store.delete(A, digest_of(good)) is True
    assert await store.find_missing(A, [digest_of(good)]) == [digest_of(good)]
