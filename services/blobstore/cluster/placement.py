"""Where a key lives: rendezvous (HRW) hashing over a fixed table of 65,536 slots.

A key's slot is the first two bytes of its SHA-256 digest (digests are already uniform). For
every slot the table holds the full preference order of the *configured* members, ranked by a
weighted rendezvous score; the first R are the slot's replicas, the rest the fall-back order
used while an owner is down. Building the table costs 70-100 ms per member (bench/codecs.py) once per membership
change; looking a key up is a slice of a byte string (HRW per key would cost 4-7 us each, too
much for a 10,000-digest FindMissingBlobs).

HRW keeps movement minimal: adding a member to n moves only the ~1/(n+1) of slots the newcomer
wins, and removing one moves only the slots it held. Placement never changes because a member
is down; that is handled per request (services.blobstore.cluster.routing).

Failure domains: when every member names a zone and there are at least R zones, a slot's R
replicas are the first members of its rendezvous order that are in zones not yet chosen (the
rest keep their order behind them), so losing a zone loses no blob. This stays a pure function
of the membership, and a newcomer still only takes the picks it wins, so movement stays ~1/n.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.blobstore.cluster.membership import Member
from services.common.errors import InvalidArgument

SLOTS = 1 << 16
MAX_MEMBERS = 255  # member indices are stored as single bytes
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(value: int) -> int:
    """splitmix64's finalizer: a fast, well-spread 64-bit hash of an integer."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _seed(member_id: str) -> int:
    return int.from_bytes(hashlib.sha256(member_id.encode()).digest()[:8], "big")


def slot_of(digest_hash: str) -> int:
    """The slot of a hex SHA-256 digest: its first two bytes."""
    return int(digest_hash[:4], 16)


@dataclass(frozen=True, eq=False)
class Placement:
    """An immutable slot table; rebuild it (never patch it) when the configuration changes.

    Answers are member ids: callers look members up by id (the membership names their addresses).
    """

    ids: tuple[str, ...]
    replication: int
    _table: bytes  # SLOTS rows of len(ids) member indices, best first

    @classmethod
    def build(cls, members: Sequence[Member], replication: int) -> Placement:
        if not members:
            raise InvalidArgument("a placement needs at least one member")
        if len(members) > MAX_MEMBERS:
            raise InvalidArgument(f"at most {MAX_MEMBERS} CAS members are supported, got {len(members)}")
        if replication < 1:
            raise InvalidArgument(f"replication must be at least 1, got {replication}")
        seeds = [_seed(m.id) for m in members]
        weights = [m.weight for m in members]
        zones = _zones(members, min(replication, len(members)))
        rows = bytearray()
        for slot in range(SLOTS):
            salt = (slot * _GOLDEN) & _MASK
            # weighted rendezvous: score = w / -ln(u) with u uniform in (0, 1); the highest wins
            scores = [(w / -math.log((_mix(s ^ salt) + 0.5) / 2**64), -i)
                      for i, (s, w) in enumerate(zip(seeds, weights, strict=True))]
            scores.sort(reverse=True)
            order = [-i for _, i in scores]
            rows.extend(order if zones is None else _spread(order, zones, replication))
        return cls(tuple(m.id for m in members), replication, bytes(rows))

    @property
    def replicas(self) -> int:
        """R, capped by the number of members."""
        return min(self.replication, len(self.ids))

    def preference(self, slot: int) -> tuple[str, ...]:
        """Every member, in the order this slot prefers them."""
        n = len(self.ids)
        return tuple(self.ids[i] for i in self._table[slot * n:(slot + 1) * n])

    def owners(self, slot: int) -> tuple[str, ...]:
        """The slot's R replicas."""
        start = slot * len(self.ids)
        return tuple(self.ids[i] for i in self._table[start:start + self.replicas])

    def owner_ids(self, digest_hash: str) -> tuple[str, ...]:
        return self.owners(slot_of(digest_hash))


def _zones(members: Sequence[Member], replicas: int) -> list[str] | None:
    """Each member's zone, when replicas can be spread over zones: every member names one, and
    there are at least R (>= 2) of them; None otherwise (plain rendezvous order)."""
    zones = [m.zone for m in members]
    if replicas < 2 or None in zones or len(set(zones)) < replicas:
        return None
    return [z for z in zones if z is not None]


def _spread(order: list[int], zones: list[str], replicas: int) -> list[int]:
    """`order` with its first `replicas` members in distinct zones: each is the best-ranked member
    of a zone not chosen yet; everyone else follows in rendezvous order."""
    if len({zones[i] for i in order[:replicas]}) == replicas:
        return order  # already spread, the common case
    picked: list[int] = []
    seen: set[str] = set()
    for i in order:
        if zones[i] not in seen:
            seen.add(zones[i])
            picked.append(i)
            if len(picked) == replicas:
                break
    return picked + [i for i in order if i not in picked]
