"""The local store's in-memory index: what is stored, how big, used when; the size budget.

Pure bookkeeping, no filesystem: the store asks it what to evict and acts on the answer. Keys
are kept in LRU order. Eviction frees down to the low-water mark, but never anything used
within `min_age` (Bazel assumes blobs it saw stay for hours): when only young data is left,
`reserve` refuses and the write gets RESOURCE_EXHAUSTED.

A shard holds millions of keys, so each costs as little memory as Python allows (under 150
bytes; `python bench/index_memory.py`): the key is one integer, the hash above a 16-bit tag for
the scope, kind and digest function (272 bits for SHA-256: 64 bytes, 3 fewer than the same 34
bytes as a bytes object), and the value one integer packing the size, where a packed item lies
(its sequence number in the packed store; 0 for a file) and the last use in whole seconds (an
action result's key also carries its action's size, as the stored size is the result's). The
recorded use is refreshed when it is `TOUCH_PERSIST_SECONDS` old, which is also when the store
writes it to disk; the LRU order itself is exact. Names (the store's paths,
`tenant/instance/kind[-function]/hh/hash-size`) are the interface; the compact form stays inside.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import and_, attrgetter, eq, rshift

from services.blobstore.access import Kind
from services.blobstore.local.layout import kind_of_dir
from services.common.errors import ResourceExhausted
from services.common.hashing import HEX_LENGTH
from services.common.resources import Digest

TOUCH_PERSIST_SECONDS = 600  # a use is recorded (and written to disk) at most this often
_TIME_BITS = 34  # seconds since the epoch, good until the year 2514
_TIME_MASK = (1 << _TIME_BITS) - 1
# A packed item's sequence number, between the size and the time: 2**37 items are ~400 years of
# writes at 10,000 a second, and a value of a packed item (size <= 2**19) stays within 90 bits,
# the largest integer Python stores in 36 bytes.
SEQ_BITS = 37
_SEQ_MASK = (1 << SEQ_BITS) - 1
_SIZE_SHIFT = _TIME_BITS + SEQ_BITS
_TAG_BITS = 16  # a key's low bits: which scope, kind and digest function (a prefix of names)
_TAG_MASK = (1 << _TAG_BITS) - 1
_ABSENT = -1  # what use_many reads for a key not stored: its "size" (-1 >> bits) matches no valid digest's
_HASH, _SIZE = attrgetter("hash"), attrgetter("size")


def _seq(value: int) -> int:
    """The sequence number in an entry's value (0: a file)."""
    return value >> _TIME_BITS & _SEQ_MASK


def _split(name: str) -> tuple[str, str, int]:
    """(prefix, hash, size) of `prefix + hh/hash-size`."""
    head, _, leaf = name.rpartition("/")
    digest_hash, _, size = leaf.partition("-")
    return head[:-2], digest_hash, int(size)


class LruIndex:
    def __init__(self, max_size: int, low_water_fraction: float, min_age: float) -> None:
        self.low_water_fraction = low_water_fraction
        self.set_max_size(max_size)
        self.min_age = min_age
        self._entries: dict[int, int] = {}  # insertion order is LRU order
        self._prefixes: dict[str, tuple[int, bool]] = {}  # prefix: (tag, whether it names action results)
        self._prefix_names: list[tuple[str, bool, int]] = []  # by tag: (prefix, action results?, hash's hex digits)
        self._removed = 0  # entries deleted since the dict was last compacted
        self.total = 0
        self.reserved = 0

    # ----- keys ------------------------------------------------------------------------------------

    def _scope(self, prefix: str) -> tuple[int, bool]:
        known = self._prefixes.get(prefix)
        if known is None:
            tag = len(self._prefix_names)
            if tag > _TAG_MASK:
                raise ResourceExhausted(f"more than {_TAG_MASK + 1} scopes in one store")
            kind, function = kind_of_dir(prefix[:-1].rpartition("/")[2])
            known = self._prefixes[prefix] = (tag, kind is Kind.AC)
            self._prefix_names.append((prefix, kind is Kind.AC, HEX_LENGTH[function]))
        return known

    def _key(self, name: str) -> tuple[int, int | None]:
        """The compact key, and the size a stored value must have to match (None: in the key)."""
        prefix, digest_hash, size = _split(name)
        tag, results = self._scope(prefix)
        key = int(digest_hash, 16) << _TAG_BITS | tag
        if results:
            return size << (4 * len(digest_hash) + _TAG_BITS) | key, None
        return key, size

    def _name(self, key: int, value: int) -> str:
        prefix, results, digits = self._prefix_names[key & _TAG_MASK]
        digest_hash = f"{key >> _TAG_BITS & ((1 << 4 * digits) - 1):0{digits}x}"
        size = key >> (4 * digits + _TAG_BITS) if results else value >> _SIZE_SHIFT
        return f"{prefix}{digest_hash[:2]}/{digest_hash}-{size}"

    def _get(self, name: str) -> tuple[int, int | None]:
        """The key of `name` and its value, None when not stored."""
        key, size = self._key(name)
        value = self._entries.get(key)
        if value is not None and size is not None and value >> _SIZE_SHIFT != size:
            value = None
        return key, value

    def _pop(self, key: int) -> int:
        value = self._entries.pop(key)
        self._removed += 1
        self._compact()
        return value

    def _compact(self) -> None:
        if self._removed > len(self._entries) + 1024:  # deleted slots slow iteration from the front
            self._entries = dict(self._entries)
            self._removed = 0

    # ----- contents --------------------------------------------------------------------------------

    def load(self, found: Iterable[tuple[str, int, float, int]]) -> None:
        """Replace the contents with (name, size, last use, sequence number) found on disk, oldest use first."""
        self._entries = {}
        self.total = 0
        for name, size, used, seq in sorted(found, key=lambda item: item[2]):
            self.add(name, size, used, seq)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return self._get(name)[1] is not None

    def names(self) -> Iterator[str]:
        """Least recently used first; a snapshot, so the index may change meanwhile."""
        return iter([self._name(key, value) for key, value in self._entries.items()])

    def used(self, name: str) -> float | None:
        """The recorded last use (seconds since the epoch), or None if absent."""
        value = self._get(name)[1]
        return None if value is None else float(value & _TIME_MASK)

    def set_used(self, name: str, when: float) -> None:
        """Record an earlier use without reordering (what a restart restores; tests age entries)."""
        key, value = self._get(name)
        if value is not None:
            self._entries[key] = value >> _TIME_BITS << _TIME_BITS | int(when)

    def use(self, name: str, now: float) -> tuple[bool, int] | None:
        """Note a use: None if absent, else whether the use is due to be written to disk, and the
        item's sequence number (0: a file)."""
        key, size = self._key(name)
        return self._touch(key, size, now)

    def use_many(self, prefix: str, digests: Sequence[Digest], now: float,
                 stale: list[tuple[str, int]]) -> list[bool]:
        """Whether each digest of one scope and kind is stored, noting uses; the (name, sequence
        number) of each use due to be written are added to `stale` (FindMissingBlobs' path: a few
        C-level passes over the batch, and no name is built unless its use is due to be written)."""
        tag, _ = self._scope(prefix)
        entries = self._entries
        # map chains of C functions, no bytecode per digest: key = hash << tag bits | tag; stored = value's size matches
        keys = list(map(tag.__or__, map(_TAG_BITS.__rlshift__, map(int, map(_HASH, digests), repeat(16)))))
        values: list[int] = list(map(entries.get, keys, repeat(_ABSENT)))
        present = list(map(eq, map(rshift, values, repeat(_SIZE_SHIFT)), map(_SIZE, digests)))
        if True not in present:
            return present
        hit_keys, hit_values = list(compress(keys, present)), list(compress(values, present))
        cutoff = now - TOUCH_PERSIST_SECONDS  # a use older than this is due to be recorded (and written)
        if min(map(and_, hit_values, repeat(_TIME_MASK))) <= cutoff:
            stamp = int(now)
            stale.extend((f"{prefix}{digest.hash[:2]}/{digest.hash}-{digest.size}", _seq(value))
                         for digest, value in zip(compress(digests, present), hit_values, strict=True)
                         if value & _TIME_MASK <= cutoff)
            hit_values = [value if value & _TIME_MASK > cutoff else value >> _TIME_BITS << _TIME_BITS | stamp
                          for value in hit_values]
        deque(map(entries.pop, hit_keys, repeat(None)), maxlen=0)
        entries.update(zip(hit_keys, hit_values, strict=True))  # moved to the recent end, in request order
        self._removed += len(hit_keys)
        self._compact()
        return present

    def _touch(self, key: int, size: int | None, now: float) -> tuple[bool, int] | None:
        value = self._entries.get(key)
        if value is None or (size is not None and value >> _SIZE_SHIFT != size):
            return None
        self._pop(key)
        due = now - (value & _TIME_MASK) >= TOUCH_PERSIST_SECONDS
        self._entries[key] = value >> _TIME_BITS << _TIME_BITS | int(now) if due else value
        return due, _seq(value)

    def add(self, name: str, size: int, now: float, seq: int = 0) -> int:
        """Enter an item stored as a file (seq 0) or packed under `seq`; the sequence number of the
        item it replaces (0: none, or a file), whose copy is now unreachable and must go."""
        if not 0 <= seq <= _SEQ_MASK:
            raise ValueError(f"sequence number {seq} is out of range")
        key, _ = self._key(name)
        old = self._entries.get(key)
        replaced = 0
        if old is not None:
            self.total -= old >> _SIZE_SHIFT
            self._pop(key)
            replaced = _seq(old)
        self._entries[key] = size << _SIZE_SHIFT | seq << _TIME_BITS | int(now)
        self.total += size
        return replaced if replaced != seq else 0

    def forget(self, name: str, seq: int | None = None) -> int | None:
        """Drop `name` (only if stored under `seq`, when given); its sequence number, None if absent."""
        key, value = self._get(name)
        if value is None or (seq is not None and _seq(value) != seq):
            return None
        self._pop(key)
        self.total -= value >> _SIZE_SHIFT
        return _seq(value)

    # ----- budget ----------------------------------------------------------------------------------

    def set_max_size(self, max_size: int) -> None:
        """Change the budget (the volume's free space caps it); eviction's low-water mark follows."""
        self.max_size = max_size
        self.low_water = int(max_size * self.low_water_fraction)

    def evict_for(self, size: int, now: float) -> list[tuple[str, int, int]]:
        """Drop old entries so `size` more bytes fit; the (name, size, sequence number) dropped, whose data must go."""
        if self.total + self.reserved + size <= self.max_size:
            return []
        target = min(self.low_water, self.max_size - self.reserved - size)
        cutoff = now - self.min_age
        victims: list[tuple[int, int]] = []
        freed = 0
        for key, value in self._entries.items():
            if self.total - freed <= target or (value & _TIME_MASK) > cutoff:
                break  # LRU order: everything after this is younger still
            victims.append((key, value))
            freed += value >> _SIZE_SHIFT
        for key, _value in victims:
            self._pop(key)
        self.total -= freed
        return [(self._name(key, value), value >> _SIZE_SHIFT, _seq(value)) for key, value in victims]

    def room_for(self, size: int) -> bool:
        return self.total + self.reserved + size <= self.max_size

    def reserve(self, size: int) -> None:
        """Hold room for a write in progress, or refuse when the budget has none left."""
        if not self.room_for(size):
            raise ResourceExhausted(
                f"cache full: {self.total + self.reserved} of {self.max_size} bytes are in use by data used "
                f"within the last {self.min_age:.0f}s; cannot store {size} more bytes")
        self.reserved += size

    def release(self, size: int) -> None:
        self.reserved -= size
