"""The packed store keyed by sequence number: copies of one name, the migration from the layout
keyed by name, and what a restart finds."""

from __future__ import annotations

import asyncio
import os
import struct
import time
from pathlib import Path

import lmdb

from services.blobstore.access import BatchItem, Kind, Scope, read_all
from services.blobstore.local.layout import name_of
from services.blobstore.local.packed import MIGRATION_BATCH, PackedStore
from services.blobstore.local.store import PACKED_DIR, LocalBlobAccess
from services.blobstore.local.verify import digest_of
from services.blobstore.streams import once

A = Scope("tenant-a")


async def started(root: Path, min_age: float = 3 * 3600) -> LocalBlobAccess:
    store = LocalBlobAccess(root, 1 << 30, 0.9, min_age)
    await store.start()
    return store


def copies(store: LocalBlobAccess) -> dict[str, list[int]]:
    """Each packed name's sequence numbers on disk."""
    found: dict[str, list[int]] = {}
    with store.packed.env.begin() as txn:
        for key, name in txn.cursor(store.packed.env.open_db(b"names")):
            found.setdefault(name.decode(), []).append(struct.unpack(">Q", key)[0])
    return found


async def test_uploads_of_one_blob_at_once_leave_one_copy(tmp_path: Path) -> None:
    store = await started(tmp_path)
    blob = os.urandom(3000)
    digest = digest_of(blob)
    # single uploads and batches of the same blob race: each may commit its own copy before the index has one
    await asyncio.gather(*(store.write(A, digest, once(blob)) for _ in range(4)),
                         *(store.batch_write(A, [BatchItem(digest, blob)]) for _ in range(4)))
    name = name_of(A, Kind.CAS, digest)
    assert len(copies(store)[name]) == 1
    assert await read_all(store, A, digest) == blob
    await store.close()
    store = await started(tmp_path)
    assert await read_all(store, A, digest) == blob and store.total_bytes == 3000
    await store.close()


async def test_a_restart_keeps_the_newest_of_two_copies_and_deletes_the_other(tmp_path: Path) -> None:
    blob = os.urandom(1000)
    name = name_of(A, Kind.CAS, digest_of(blob))
    (tmp_path / PACKED_DIR).mkdir()
    packed = PackedStore(tmp_path / PACKED_DIR, 1 << 30)
    # what a crash leaves between committing a second copy and deleting the first
    first, second = packed.put([(name, blob)], time.time()) + packed.put([(name, blob)], time.time())
    packed.close()
    store = await started(tmp_path)
    assert copies(store) == {name: [second]} and first < second
    assert await read_all(store, A, digest_of(blob)) == blob and store.total_bytes == 1000
    await store.close()


def write_name_keyed(path: Path, items: dict[str, tuple[bytes, float]]) -> None:
    """The packed store as the layout keyed by name left it: `blobs` (name: bytes), `used` (name: last use)."""
    path.mkdir(parents=True)
    env = lmdb.open(str(path), map_size=1 << 28, max_dbs=2)
    blobs, used = env.open_db(b"blobs"), env.open_db(b"used")
    with env.begin(write=True) as txn:
        for name, (data, when) in items.items():
            txn.put(name.encode(), data, db=blobs)
            txn.put(name.encode(), struct.pack("<d", when), db=used)
    env.close()


async def test_the_layout_keyed_by_name_is_migrated_with_its_last_uses(tmp_path: Path) -> None:
    now = time.time()
    blobs = [os.urandom(100 + n) for n in range(MIGRATION_BATCH + 10)]  # more than one migration batch
    # the first blob was used last; the second two hours ago (old enough to evict)
    when = [now, now - 7200] + [now - 60 + n / 1e3 for n in range(len(blobs) - 2)]
    result = b"an action result"
    action = digest_of(b"action")
    items = {name_of(A, Kind.CAS, digest_of(blob)): (blob, used) for blob, used in zip(blobs, when, strict=True)}
    items[name_of(A, Kind.AC, action)] = (result, now)
    write_name_keyed(tmp_path / PACKED_DIR, items)

    store = await started(tmp_path, min_age=3600)
    assert store.total_bytes == sum(map(len, blobs)) + len(result)
    assert await store.find_missing(A, [digest_of(blob) for blob in blobs]) == []
    assert await read_all(store, A, digest_of(blobs[0])) == blobs[0]
    assert await store.get_action_result(A, action) == result
    names = list(store.index.names())
    assert names[0] == name_of(A, Kind.CAS, digest_of(blobs[1]))  # last uses carried over: LRU order
    with store.packed.env.begin() as txn:
        assert {name for name, _ in txn.cursor()} == {b"items", b"names", b"uses"}  # the old tables are gone
    new = os.urandom(500)
    await store.write(A, digest_of(new), once(new))  # numbering continues past the migrated items
    assert max(copies(store)[name_of(A, Kind.CAS, digest_of(new))]) == len(items) + 1
    await store.close()

    store = await started(tmp_path, min_age=3600)
    assert await read_all(store, A, digest_of(new)) == new
    assert await read_all(store, A, digest_of(blobs[-1])) == blobs[-1]
    await store.close()
