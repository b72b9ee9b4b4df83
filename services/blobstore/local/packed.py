"""Small items packed into one embedded LMDB database instead of a file each.

A file per 1 KiB blob costs a create, a rename and a journal commit of its own; an LMDB write
transaction stores a whole group of items and makes them durable with one commit (LMDB is
copy-on-write: a crash, kill -9 included, leaves the last committed state, never a torn item).
`blobs` maps a key's name to its bytes; `used` maps it to its last use (8-byte float), written
when recency is persisted, so a restart rebuilds LRU order for packed items as it does for files
(from their mtimes). A commit that fails on a full disk changes nothing and is RESOURCE_EXHAUSTED;
pages it half wrote are reused by the next commit (`spare_bytes` counts them as free).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Sequence
from itertools import repeat
from pathlib import Path

import lmdb

from services.blobstore.local import volume
from services.common.errors import ApiError, Internal, ResourceExhausted

log = logging.getLogger(__name__)

_TIME = struct.Struct("<d")
_META_PAGES = 2
MIN_MAP_SIZE = 256 * 1024 * 1024
DISK_FULL_MARGIN = 1024 * 1024  # pages and metadata a commit writes beyond its items' bytes


class PackedStore:
    def __init__(self, path: Path, budget: int) -> None:
        self.path = path
        # The map is address space, not memory or disk: room for the whole budget and then some.
        self.env = lmdb.open(str(path), map_size=max(2 * budget, MIN_MAP_SIZE), max_dbs=2, readahead=False)
        self._blobs = self.env.open_db(b"blobs")
        self._used = self.env.open_db(b"used")

    def scan(self, default_time: float) -> list[tuple[str, int, float]]:
        """Every packed item as (name, size, last use)."""
        found: list[tuple[str, int, float]] = []
        with self.env.begin(buffers=True) as txn:
            used = txn.cursor(self._used)
            for key, value in txn.cursor(self._blobs):
                stamp = used.get(key)
                found.append((bytes(key).decode(), len(value), _TIME.unpack(stamp)[0] if stamp else default_time))
        return found

    def get(self, names: Sequence[str]) -> list[bytes | None]:
        with self.env.begin(db=self._blobs) as txn:
            return [txn.get(name.encode()) for name in names]

    def put(self, items: Sequence[tuple[str, bytes]], now: float) -> None:
        """Store every item in one transaction; durable when this returns."""
        stamp = _TIME.pack(now)
        try:
            keys = [name.encode() for name, _ in items]
            with self.env.begin(write=True) as txn:  # putmulti: the loop over items runs in C
                txn.cursor(self._blobs).putmulti(zip(keys, [data for _, data in items], strict=True))
                txn.cursor(self._used).putmulti(zip(keys, repeat(stamp)))
        except lmdb.MapFullError:
            raise ResourceExhausted("the small-blob database is full; raise the cache budget") from None
        except lmdb.Error as err:
            raise self._disk_error(err, sum(len(data) for _, data in items)) from err

    def touch(self, names: Iterable[str], now: float) -> None:
        """Record uses; on a full disk they stay in memory only (the LRU order is right until a restart)."""
        stamp = _TIME.pack(now)
        try:
            with self.env.begin(write=True, db=self._used) as txn:
                for name in names:
                    txn.put(name.encode(), stamp)
        except lmdb.Error as err:
            log.warning("last uses not recorded (%s): the volume has %d bytes free", err,
                        volume.free_bytes(self.path))

    def delete(self, names: Iterable[str]) -> None:
        try:
            with self.env.begin(write=True) as txn:
                for name in names:
                    key = name.encode()
                    txn.delete(key, db=self._blobs)
                    txn.delete(key, db=self._used)
        except lmdb.Error as err:
            raise self._disk_error(err, 0) from err

    def _disk_error(self, err: lmdb.Error, size: int) -> ApiError:
        """A failed commit as an answer. LMDB reports a short write (ENOSPC) as EIO, so the volume
        decides: with less free space than the commit needed, the disk is full."""
        if volume.free_bytes(self.path) < size + DISK_FULL_MARGIN:
            return volume.full(self.path, f"cannot commit {size} bytes to the small-blob database")
        return Internal(f"small-blob database: {err}")

    def spare_bytes(self) -> int:
        """Bytes of the database file that hold no live page: new items reuse them before it grows."""
        with self.env.begin() as txn:
            stats = [self.env.stat(), txn.stat(self._blobs), txn.stat(self._used)]
        live = _META_PAGES + sum(st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"] for st in stats)
        try:
            size = (self.path / "data.mdb").stat().st_size
        except FileNotFoundError:
            return 0
        return max(0, size - live * stats[0]["psize"])

    def close(self) -> None:
        self.env.close()
