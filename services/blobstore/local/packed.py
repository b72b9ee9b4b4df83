"""Small items packed into one embedded LMDB database instead of a file each.

A file per 1 KiB blob costs a create, a rename and a journal commit of its own; an LMDB write
transaction stores a whole group of items and makes them durable with one commit (LMDB is
copy-on-write: a crash, kill -9 included, leaves the last committed state, never a torn item).

Items are keyed by a sequence number, not by name, so a group is appended at the right edge of
the B-trees and a commit writes little more than the group's own bytes. Keyed by name (a random
hash), each item of a group landed on a different leaf page across the whole tree, and the commit
wrote and synced a page per item (`python bench/packed_store.py`: 1,000 x 1 KiB into a store
of 15,000 items, 15.5 ms by name, 1.8 ms appended). Three tables share the key: `items` (the
bytes), `names` (each item's name, for the start-up scan) and `uses` (its last use, an 8-byte
float, written with the item and when recency is persisted); the index
(services.blobstore.local.index) maps names to sequence numbers.
A commit that fails on a full disk changes nothing and is RESOURCE_EXHAUSTED; pages it half wrote
are reused by the next commit (`spare_bytes` counts them as free).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

import lmdb

from services.blobstore.local import volume
from services.common.errors import ApiError, Internal, ResourceExhausted

log = logging.getLogger(__name__)

_TIME = struct.Struct("<d")
_SEQ = struct.Struct(">Q")  # big-endian: LMDB's byte order of keys is the numbers' order
_META_PAGES = 2
MIN_MAP_SIZE = 256 * 1024 * 1024
DISK_FULL_MARGIN = 1024 * 1024  # pages and metadata a commit writes beyond its items' bytes
_LEGACY = (b"blobs", b"used")  # the tables of the layout keyed by name, migrated at open
MIGRATION_BATCH = 1024


class PackedStore:
    def __init__(self, path: Path, budget: int) -> None:
        self.path = path
        # The map is address space, not memory or disk: room for the whole budget and then some.
        self.env = lmdb.open(str(path), map_size=max(2 * budget, MIN_MAP_SIZE), max_dbs=5, readahead=False)
        self._items = self.env.open_db(b"items")
        self._names = self.env.open_db(b"names")
        self._uses = self.env.open_db(b"uses")
        with self.env.begin(db=self._items) as txn:
            cursor = txn.cursor()
            self._next = _SEQ.unpack(cursor.key())[0] + 1 if cursor.last() else 1
        self._migrate()

    def scan(self, default_time: float) -> list[tuple[str, int, float, int]]:
        """Every packed item as (name, size, last use, sequence number). Of two copies of one name
        (concurrent writes of the same blob, then a crash before the older was deleted), the newer stays."""
        found: dict[str, tuple[str, int, float, int]] = {}
        older: list[int] = []
        with self.env.begin(buffers=True) as txn:
            for key, value in txn.cursor(self._items):
                seq = _SEQ.unpack(key)[0]
                name = bytes(txn.get(key, db=self._names) or b"").decode()
                stamp = txn.get(key, db=self._uses)
                if name in found:
                    older.append(found[name][3])
                found[name] = (name, len(value), _TIME.unpack(stamp)[0] if stamp else default_time, seq)
        if older:
            self.delete(older)
        return list(found.values())

    def get(self, seqs: Sequence[int]) -> list[bytes | None]:
        with self.env.begin(db=self._items) as txn:
            return [txn.get(_SEQ.pack(seq)) for seq in seqs]

    def put(self, items: Sequence[tuple[str, bytes]], now: float) -> list[int]:
        """Store every item in one transaction, durable when this returns; their sequence numbers."""
        try:
            with self.env.begin(write=True) as txn:
                seqs = self._append(txn, [name.encode() for name, _ in items], [data for _, data in items],
                                    _TIME.pack(now))
        except lmdb.MapFullError:
            raise ResourceExhausted("the small-blob database is full; raise the cache budget") from None
        except lmdb.Error as err:
            raise self._disk_error(err, sum(len(data) for _, data in items)) from err
        self._next += len(seqs)  # only once committed: a failed commit's numbers are free again
        return seqs

    def _append(self, txn: lmdb.Transaction, names: list[bytes], datas: list[bytes],
                stamps: bytes | list[bytes]) -> list[int]:
        seqs = list(range(self._next, self._next + len(names)))
        keys = list(map(_SEQ.pack, seqs))
        uses = [stamps] * len(keys) if isinstance(stamps, bytes) else stamps
        for db, values in ((self._items, datas), (self._names, names), (self._uses, uses)):
            # putmulti: the loop over items runs in C; append: each key lands past the last one
            _consumed, added = txn.cursor(db).putmulti(zip(keys, values, strict=True), append=True)
            if added != len(keys):  # a key not past the last is refused, not raised
                raise Internal(f"small-blob database: {len(keys) - added} of {len(keys)} items not appended")
        return seqs

    def touch(self, seqs: Iterable[int], now: float) -> None:
        """Record uses; on a full disk they stay in memory only (the LRU order is right until a restart)."""
        stamp = _TIME.pack(now)
        try:
            with self.env.begin(write=True) as txn:
                items = txn.cursor(self._items)
                for key in map(_SEQ.pack, seqs):
                    if items.set_key(key):  # not one deleted meanwhile
                        txn.put(key, stamp, db=self._uses)
        except lmdb.Error as err:
            log.warning("last uses not recorded (%s): the volume has %d bytes free", err,
                        volume.free_bytes(self.path))

    def delete(self, seqs: Iterable[int]) -> None:
        try:
            with self.env.begin(write=True) as txn:
                for key in map(_SEQ.pack, seqs):
                    for db in (self._items, self._names, self._uses):
                        txn.delete(key, db=db)
        except lmdb.Error as err:
            raise self._disk_error(err, 0) from err

    def _migrate(self) -> None:
        """Move the items of the layout keyed by name over, a batch per transaction (a crash leaves
        each item in one layout or the other), then drop its tables."""
        try:
            blobs, used = (self.env.open_db(name, create=False) for name in _LEGACY)
        except lmdb.NotFoundError:
            return
        moved = 0
        now = _TIME.pack(time.time())  # an item without a recorded use counts as used now
        while True:
            with self.env.begin(write=True) as txn:
                batch = list(islice(txn.cursor(blobs), MIGRATION_BATCH))
                if not batch:
                    txn.drop(blobs)
                    txn.drop(used)
                    break
                stamps = [txn.get(name, db=used) or now for name, _ in batch]
                self._append(txn, [name for name, _ in batch], [data for _, data in batch], stamps)
                for name, _ in batch:
                    txn.delete(name, db=blobs)
                    txn.delete(name, db=used)
            self._next += len(batch)
            moved += len(batch)
        log.info("small-blob database: %d items moved to the layout keyed by sequence number", moved)

    def _disk_error(self, err: lmdb.Error, size: int) -> ApiError:
        """A failed commit as an answer. LMDB reports a short write (ENOSPC) as EIO, so the volume
        decides: with less free space than the commit needed, the disk is full."""
        if volume.free_bytes(self.path) < size + DISK_FULL_MARGIN:
            return volume.full(self.path, f"cannot commit {size} bytes to the small-blob database")
        return Internal(f"small-blob database: {err}")

    def spare_bytes(self) -> int:
        """Bytes of the database file that hold no live page: new items reuse them before it grows."""
        with self.env.begin() as txn:
            stats = [self.env.stat(), *(txn.stat(db) for db in (self._items, self._names, self._uses))]
        live = _META_PAGES + sum(st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"] for st in stats)
        try:
            size = (self.path / "data.mdb").stat().st_size
        except FileNotFoundError:
            return 0
        return max(0, size - live * stats[0]["psize"])

    def close(self) -> None:
        self.env.close()
