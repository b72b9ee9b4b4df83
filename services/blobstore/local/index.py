"""The local store's in-memory index: what is stored, how big, used when; the size budget.

Pure bookkeeping, no filesystem: the store asks it what to evict and acts on the answer. Keys
are kept in LRU order. Eviction frees down to the low-water mark, but never anything used
within `min_age` (Bazel assumes blobs it saw stay for hours): when only young data is left,
`reserve` refuses and the write gets RESOURCE_EXHAUSTED.

A shard holds millions of keys, so each costs as little memory as Python allows (under 150
bytes; `python bench/index_memory.py`): the key is 34 bytes (a small number for the scope, kind
and digest function, then the raw 32-byte hash; SHA-1, SHA-384 and SHA-512 hashes are 20, 48 and
64 bytes; bytes rather than one integer, which would be 3 bytes smaller but cost FindMissingBlobs
~1.3 ms more per 10,000 digests to parse from hex), and the value one integer packing the size,
where a packed item lies (its sequence number in the packed store; 0 for a file) and the last use
in whole seconds (an action result's key also carries its action's size, as the stored size is
the result's). The
recorded use is refreshed when it is `TOUCH_PERSIST_SECONDS` old, which is also when the store
writes it to disk; the LRU order itself is exact. Names (the store's paths,
`tenant/instance/kind[-function]/hh/hash-size`) are the interface; the compact form stays inside.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import and_, attrgetter, eq, rshift

from services.common.errors import ResourceExhausted
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
_RESULTS = "ac"  # the kind directory of action results' names, before any "-<function>"
_TAGS = 1 << 16  # a key starts with 2 bytes naming its scope, kind and digest function (a prefix of names)
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
        self._entries: dict[bytes, int] = {}  # insertion order is LRU order
        self._prefixes: dict[str, tuple[bytes, bool]] = {}  # prefix: (tag, whether it names action results)
        self._prefix_names: list[tuple[str, bool]] = []
        self._removed = 0  # entries deleted since the dict was last compacted
        self.total = 0
        self.reserved = 0

    # ----- keys ------------------------------------------------------------------------------------

    def _scope(self, prefix: str) -> tuple[bytes, bool]:
        known = self._prefixes.get(prefix)
        if known is None:
            if len(self._prefix_names) == _TAGS:
                raise ResourceExhausted(f"more than {_TAGS} scopes in one store")
            results = prefix[:-1].rpartition("/")[2].partition("-")[0] == _RESULTS
            known = self._prefixes[prefix] = (len(self._prefix_names).to_bytes(2, "little"), results)
            self._prefix_names.append((prefix, results))
        return known

    def _key(self, name: str) -> tuple[bytes, int | None]:
        """The compact key, and the size a stored value must have to match (None: in the key)."""
        prefix, digest_hash, size = _split(name)
        tag, results = self._scope(prefix)
        key = tag + bytes.fromhex(digest_hash)
        if results:
            return key + size.to_bytes(8, "little"), None
        return key, size

    def _name(self, key: bytes, value: int) -> str:
        prefix, results = self._prefix_names[int.from_bytes(key[:2], "little")]
        digest_hash = key[2:-8].hex() if results else key[2:].hex()
        size = int.from_bytes(key[-8:], "little") if results else value >> _SIZE_SHIFT
        return f"{prefix}{digest_hash[:2]}/{digest_hash}-{size}"

    def _get(self, name: str) -> tuple[bytes, int | None]:
        """The key of `name` and its value, None when not stored."""
        key, size = self._key(name)
        value = self._entries.get(key)
        if value is not None and size is not None and value >> _SIZE_SHIFT != size:
            value = None
        return key, value

    def _pop(self, key: bytes) -> int:
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
        # map chains of C functions, no bytecode per digest: key = tag + raw hash; stored = value's size matches
        keys = list(map(tag.__add__, map(bytes.fromhex, map(_HASH, digests))))
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

    def _touch(self, key: bytes, size: int | None, now: float) -> tuple[bool, int] | None:
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
        victims: list[tuple[bytes, int]] = []
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
