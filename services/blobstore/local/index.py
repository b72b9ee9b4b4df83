"""The local store's in-memory index: what is stored, how big, used when; the size budget.

Pure bookkeeping, no filesystem: the store asks it what to evict and acts on the answer. Keys
are kept in LRU order. Eviction frees down to the low-water mark, but never anything used
within `min_age` (Bazel assumes blobs it saw stay for hours): when only young data is left,
`reserve` refuses and the write gets RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from services.common.errors import ResourceExhausted

TOUCH_PERSIST_SECONDS = 600  # a use is written to the file's mtime at most this often


@dataclass(slots=True)
class Entry:
    size: int
    used: float  # last use, seconds since the epoch
    persisted: float  # the use time last written to disk


class LruIndex:
    def __init__(self, max_size: int, low_water_fraction: float, min_age: float) -> None:
        self.max_size = max_size
        self.low_water = int(max_size * low_water_fraction)
        self.min_age = min_age
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.total = 0
        self.reserved = 0

    def load(self, found: Iterable[tuple[str, int, float]]) -> None:
        """Replace the contents with (name, size, last use) found on disk, oldest use first."""
        ordered = sorted(found, key=lambda item: item[2])
        self._entries = OrderedDict((name, Entry(size, used, used)) for name, size, used in ordered)
        self.total = sum(entry.size for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> Iterator[str]:
        """Least recently used first; a snapshot, so the index may change meanwhile."""
        return iter(list(self._entries))

    def get(self, name: str) -> Entry | None:
        return self._entries.get(name)

    def touch(self, name: str, entry: Entry, now: float) -> bool:
        """Record a use; True when the use should also be written to disk now."""
        entry.used = now
        self._entries.move_to_end(name)
        if now - entry.persisted >= TOUCH_PERSIST_SECONDS:
            entry.persisted = now
            return True
        return False

    def add(self, name: str, size: int, now: float) -> None:
        old = self._entries.get(name)
        if old is not None:
            self.total -= old.size
        self._entries[name] = Entry(size, now, now)
        self._entries.move_to_end(name)
        self.total += size

    def forget(self, name: str) -> bool:
        entry = self._entries.pop(name, None)
        if entry is None:
            return False
        self.total -= entry.size
        return True

    def evict_for(self, size: int, now: float) -> list[tuple[str, int]]:
        """Drop old entries so `size` more bytes fit; the (name, size) dropped, whose files must go."""
        if self.total + self.reserved + size <= self.max_size:
            return []
        target = min(self.low_water, self.max_size - self.reserved - size)
        cutoff = now - self.min_age
        victims: list[tuple[str, int]] = []
        while self._entries and self.total > target:
            name, entry = next(iter(self._entries.items()))
            if entry.used > cutoff:
                break  # LRU order: everything after this is younger still
            self._entries.popitem(last=False)
            self.total -= entry.size
            victims.append((name, entry.size))
        return victims

    def reserve(self, size: int) -> None:
        """Hold room for a write in progress, or refuse when the budget has none left."""
        if self.total + self.reserved + size > self.max_size:
            raise ResourceExhausted(
                f"cache full: {self.total + self.reserved} of {self.max_size} bytes are in use by data used "
                f"within the last {self.min_age:.0f}s; cannot store {size} more bytes")
        self.reserved += size

    def release(self, size: int) -> None:
        self.reserved -= size
