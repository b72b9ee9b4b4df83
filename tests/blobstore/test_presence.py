"""RecentlyPresent over a real local store: what it answers from memory, and what it never does."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from prometheus_client import REGISTRY

from services.blobstore.access import BatchItem, Scope
from services.blobstore.local.store import LocalBlobAccess
from services.blobstore.local.verify import digest_of
from services.blobstore.presence import MAX_ENTRIES, TTL_SECONDS, RecentlyPresent
from services.common.hashing import DigestFunction
from services.common.resources import Digest

A = Scope("tenant-a")
B = Scope("tenant-b")


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def stack(tmp_path: Path, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> RecentlyPresent:
    store = LocalBlobAccess(tmp_path, max_size_bytes=1 << 30)
    await store.start()
    return RecentlyPresent(store, ttl, max_entries)


async def stored(blobs: RecentlyPresent) -> Digest:
    """A new 100-byte blob written through `blobs` in scope A."""
    data = os.urandom(100)
    await blobs.write(A, digest_of(data), one(data))
    return digest_of(data)


def answered() -> float:
    """Digests answered from memory so far (the operator's metric)."""
    return REGISTRY.get_sample_value("bbapi_blobstore_presence_answered_total") or 0.0


async def test_a_written_blob_is_answered_present_without_a_lookup(tmp_path: Path) -> None:
    blobs = await stack(tmp_path)
    digest = await stored(blobs)
    before = answered()
    assert await blobs.find_missing(A, [digest]) == []
    assert answered() - before == 1


async def test_another_tenant_instance_or_function_is_asked_of_the_store(tmp_path: Path) -> None:
    blobs = await stack(tmp_path)
    digest = await stored(blobs)
    before = answered()
    others = [B, Scope("tenant-a", instance_name="other"), Scope("tenant-a", function=DigestFunction.BLAKE3)]
    for scope in others:
        assert await blobs.find_missing(scope, [digest]) == [digest]
    assert answered() == before


async def test_missing_blobs_are_never_remembered(tmp_path: Path) -> None:
    blobs = await stack(tmp_path)
    absent = Digest("ab" * 32, 5)
    before = answered()
    for _ in range(2):
        assert await blobs.find_missing(A, [absent]) == [absent]
    assert answered() == before


async def test_a_lookup_the_store_confirmed_is_answered_next_time(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    data = os.urandom(100)
    direct = LocalBlobAccess(store_path, max_size_bytes=1 << 30)
    await direct.start()
    await direct.write(A, digest_of(data), one(data))  # stored behind the decorator's back
    await direct.close()
    blobs = await stack(store_path)
    absent = Digest("cd" * 32, 7)
    assert await blobs.find_missing(A, [digest_of(data), absent]) == [absent]
    before = answered()
    assert await blobs.find_missing(A, [digest_of(data), absent]) == [absent]
    assert answered() - before == 1


async def test_a_deleted_blob_is_missing_at_once(tmp_path: Path) -> None:
    blobs = await stack(tmp_path)
    digest = await stored(blobs)
    assert await blobs.delete(A, digest) is True
    assert await blobs.find_missing(A, [digest]) == [digest]


async def test_only_verified_batch_items_are_remembered(tmp_path: Path) -> None:
    blobs = await stack(tmp_path)
    good, bad = os.urandom(50), os.urandom(50)
    lie = Digest(digest_of(os.urandom(50)).hash, 50)  # bad's bytes under another digest: refused
    results = await blobs.batch_write(A, [BatchItem(digest_of(good), good), BatchItem(lie, bad)])
    assert [r.error is None for r in results] == [True, False]
    before = answered()
    assert await blobs.find_missing(A, [digest_of(good), lie]) == [lie]
    assert answered() - before == 1


async def test_expired_and_overflowing_entries_are_asked_of_the_store(tmp_path: Path) -> None:
    expired = await stack(tmp_path / "ttl", ttl=0.0)
    digest = await stored(expired)
    before = answered()
    assert await expired.find_missing(A, [digest]) == []
    assert answered() == before

    bounded = await stack(tmp_path / "bounded", max_entries=2)
    digests = [await stored(bounded) for _ in range(3)]
    before = answered()
    assert await bounded.find_missing(A, digests) == []
    assert answered() - before == 2  # the oldest was forgotten, and asked of the store
