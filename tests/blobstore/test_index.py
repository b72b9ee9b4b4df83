"""The local store's index alone: LRU order, the budget, eviction's minimum age, compact keys."""

from __future__ import annotations

import hashlib

import pytest

from services.blobstore.access import Kind, Scope
from services.blobstore.local.index import SEQ_BITS, TOUCH_PERSIST_SECONDS, LruIndex
from services.blobstore.local.layout import name_of, prefix_of
from services.common.errors import ResourceExhausted
from services.common.hashing import DigestFunction, hash_hex
from services.common.resources import Digest

NOW = 1_900_000_000.0
A, B = Scope("tenant-a"), Scope("tenant-b", "main")


def blob(n: int, size: int = 100, scope: Scope = A) -> str:
    return name_of(scope, Kind.CAS, Digest(hashlib.sha256(bytes([n])).hexdigest(), size))


def test_names_round_trip_and_a_key_is_its_scope_kind_hash_and_size() -> None:
    index = LruIndex(10_000, 0.5, 0)
    action = name_of(B, Kind.AC, Digest(hashlib.sha256(b"action").hexdigest(), 6))
    for name, size in ((blob(1), 100), (blob(1, scope=B), 100), (action, 4000)):
        index.add(name, size, NOW)
    assert list(index.names()) == [blob(1), blob(1, scope=B), action]
    assert index.total == 4200
    assert blob(1, size=101) not in index and blob(2) not in index  # another size or hash is another key
    assert action in index and index.forget(action) == 0 and action not in index
    assert index.total == 200


def test_every_digest_function_is_a_key_space_of_its_own() -> None:
    index = LruIndex(100_000, 0.5, 0)
    added = []
    for function in DigestFunction:  # hashes of 20 (SHA-1) to 64 (SHA-512) bytes
        scope = Scope("tenant-a", "", function)
        digest = Digest(hash_hex(function, b"same bytes"), 10)
        action = Digest(hash_hex(function, b"action"), 6)
        added += [name_of(scope, Kind.CAS, digest), name_of(scope, Kind.AC, action)]
        index.add(added[-2], 10, NOW)
        index.add(added[-1], 400, NOW)
    assert list(index.names()) == added and index.total == 410 * len(DigestFunction)
    for function in DigestFunction:
        scope = Scope("tenant-a", "", function)
        assert index.use_many(prefix_of(scope, Kind.CAS), [Digest(hash_hex(function, b"same bytes"), 10),
                                                           Digest(hash_hex(function, b"other"), 10)],
                              NOW, []) == [True, False]
    sha256, blake3 = (Scope("tenant-a", "", f) for f in (DigestFunction.SHA256, DigestFunction.BLAKE3))
    same_hash = Digest(hash_hex(DigestFunction.SHA256, b"x"), 1)
    index.add(name_of(sha256, Kind.CAS, same_hash), 1, NOW)
    assert name_of(blake3, Kind.CAS, same_hash) not in index  # the same hash under BLAKE3 is another key
    assert index.forget(added[0]) == 0 and added[0] not in index and added[2] in index


def test_uses_reorder_and_are_due_for_disk_only_every_persist_interval() -> None:
    index = LruIndex(10_000, 0.5, 0)
    for n in range(3):
        index.add(blob(n), 100, NOW)
    assert index.use(blob(0), NOW + 1) == (False, 0)  # recorded recently: reorder only
    assert list(index.names()) == [blob(1), blob(2), blob(0)]
    assert index.used(blob(0)) == NOW
    assert index.use(blob(1), NOW + TOUCH_PERSIST_SECONDS) == (True, 0)
    assert index.used(blob(1)) == NOW + TOUCH_PERSIST_SECONDS
    assert index.use(blob(9), NOW) is None
    stale: list[tuple[str, int]] = []
    digests = [Digest(hashlib.sha256(bytes([n])).hexdigest(), 100) for n in (2, 9)]
    assert index.use_many(blob(0).rsplit("/", 2)[0] + "/", digests, NOW + 2 * TOUCH_PERSIST_SECONDS, stale) == \
        [True, False]
    assert stale == [(blob(2), 0)]


def test_use_many_moves_every_hit_to_the_recent_end_and_refreshes_only_what_is_due() -> None:
    index = LruIndex(10_000, 0.5, 0)
    for n in range(4):
        index.add(blob(n), 100, NOW, seq=n + 1)
    index.set_used(blob(1), NOW - TOUCH_PERSIST_SECONDS)
    digests = [Digest(hashlib.sha256(bytes([n])).hexdigest(), size)
               for n, size in ((3, 100), (1, 100), (0, 99), (9, 100))]
    stale: list[tuple[str, int]] = []
    assert index.use_many(prefix_of(A, Kind.CAS), digests, NOW + 1, stale) == [True, True, False, False]
    assert stale == [(blob(1), 2)]  # due: its last use is a persist interval old; blob 3's is not
    assert list(index.names()) == [blob(0), blob(2), blob(3), blob(1)]
    assert (index.used(blob(1)), index.used(blob(3))) == (NOW + 1, NOW)
    assert index.use_many(prefix_of(A, Kind.CAS), digests[2:], NOW + 2, stale) == [False, False]


def test_eviction_frees_to_low_water_in_lru_order_sparing_young_entries() -> None:
    index = LruIndex(1000, 0.5, min_age=3600)
    for n in range(10):
        index.add(blob(n), 100, NOW)
    for n in range(4):
        index.set_used(blob(n), NOW - 7200)  # the four oldest were last used two hours ago
    victims = index.evict_for(100, NOW)
    assert victims == [(blob(n), 100, 0) for n in range(4)]  # not down to 500: the rest is young
    assert index.total == 600 and blob(4) in index
    index.reserve(300)
    with pytest.raises(ResourceExhausted, match="cache full"):
        index.reserve(200)
    index.release(300)
    for n in range(10, 14):
        index.add(blob(n), 100, NOW + 4000)  # full again; the earlier entries are old by now
    assert index.evict_for(100, NOW + 4000) == [(blob(n), 100, 0) for n in range(4, 9)]  # down to low water
    assert index.total == 500


def test_many_removals_keep_order_and_contents() -> None:
    index = LruIndex(10**9, 0.5, 0)
    for n in range(256):
        index.add(blob(n, size=10), 10, NOW)
    for _round in range(20):
        for n in range(0, 256, 2):
            index.use(blob(n, size=10), NOW)
    assert list(index.names()) == [blob(n, 10) for n in range(1, 256, 2)] + [blob(n, 10) for n in range(0, 256, 2)]
    assert len(index) == 256 and index.total == 2560


def test_a_packed_items_sequence_number_rides_along_without_touching_size_or_time() -> None:
    index = LruIndex(10**12, 0.5, 0)
    top = (1 << SEQ_BITS) - 1
    largest = 256 * 1024  # the largest packed size; a file of any size has sequence number 0
    index.add(blob(1, size=largest), largest, NOW, seq=top)
    index.add(blob(2, size=5 << 30), 5 << 30, NOW)
    assert blob(1, size=largest) in index and blob(1, size=largest - 1) not in index
    assert index.use(blob(1, size=largest), NOW + TOUCH_PERSIST_SECONDS) == (True, top)
    assert index.used(blob(1, size=largest)) == NOW + TOUCH_PERSIST_SECONDS
    assert index.use(blob(2, size=5 << 30), NOW) == (False, 0)
    assert index.total == largest + (5 << 30)
    with pytest.raises(ValueError, match="out of range"):
        index.add(blob(3), 100, NOW, seq=top + 1)


def test_a_second_copy_replaces_the_first_and_names_it_for_deletion() -> None:
    index = LruIndex(10_000, 0.5, 0)
    assert index.add(blob(1), 100, NOW, seq=7) == 0
    assert index.add(blob(1), 100, NOW, seq=9) == 7  # two uploads of one blob at once: copy 7 must go
    assert index.add(blob(1), 100, NOW, seq=9) == 0
    assert index.total == 100
    assert index.forget(blob(1), seq=7) is None and blob(1) in index  # a reader of the old copy forgets nothing
    assert index.forget(blob(1), seq=9) == 9 and blob(1) not in index
    index.add(blob(2), 100, NOW - 7200, seq=3)
    assert index.evict_for(10_000, NOW) == [(blob(2), 100, 3)]


def test_a_store_refuses_more_scopes_than_its_keys_can_tag() -> None:
    index = LruIndex(10**12, 0.5, 0)
    for n in range(1 << 16):  # tenants x instance names x kinds x digest functions
        index.add(blob(1, scope=Scope(f"t{n}")), 100, NOW)
    with pytest.raises(ResourceExhausted, match="scopes"):
        index.add(blob(1, scope=Scope("one-too-many")), 100, NOW)
    assert blob(1, scope=Scope("t0")) in index and len(index) == 1 << 16
