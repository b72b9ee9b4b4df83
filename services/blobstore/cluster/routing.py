"""Which members a request goes to, from the placement tables and who is up right now.

Given the tables and the members' health, every answer is a function of the digest:

* write set: the slot's first R live members, walking the preference list; a down owner's place
  is taken by the next live member, which holds the copy for it (a hinted hand-off).
* lookup order (FindMissingBlobs, GetActionResult): the write set of the current table, then,
  while a membership change is migrating, that of the previous table.
* read order (ByteStream, BatchReadBlobs): the lookup order, then every other live member, as a
  read of a blob the client was told exists is worth a few more probes.
* when no member a request could go to is believed up, it goes to them anyway: a health check
  that timed out on a busy machine must not fail a build that the member would serve, and a
  member that really is down refuses the connection at once.

Lookup orders are cached per slot until a member goes up or down (the health's `epoch`), so a
10,000-digest FindMissingBlobs costs a dictionary lookup per digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.blobstore.cluster.placement import Placement, slot_of


class Health(Protocol):
    @property
    def epoch(self) -> int:
        """Changes whenever a member goes down or comes back."""

    def is_up(self, member_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Target:
    """A member to write to; `stands_in_for` names the down owner whose copy it holds."""

    member: str
    stands_in_for: str | None = None


@dataclass(frozen=True)
class Tables:
    current: Placement
    previous: Placement | None = None


class Routes:
    """The router in force, held by the cluster's owner and replaced whole when membership changes."""

    def __init__(self, current: Router) -> None:
        self.current = current


class Router:
    def __init__(self, tables: Tables, health: Health) -> None:
        self.tables = tables
        self.health = health
        self._lookups: dict[int, tuple[str, ...]] = {}
        self._epoch = health.epoch

    def sole_member(self) -> str | None:
        """The one member every key lives on, when there is exactly one and it is up (a cluster of
        one, as the all-in-one is): lookups then need no per-key routing."""
        ids = self.tables.current.ids
        if self.tables.previous is None and len(ids) == 1 and self.health.is_up(ids[0]):
            return ids[0]
        return None

    def owners(self, digest_hash: str) -> tuple[str, ...]:
        return self.tables.current.owner_ids(digest_hash)

    def write_set(self, digest_hash: str, table: Placement | None = None) -> list[Target]:
        table = table or self.tables.current
        preference = table.preference(slot_of(digest_hash))
        owners, others = preference[:table.replicas], preference[table.replicas:]
        targets = [Target(m) for m in owners if self.health.is_up(m)]
        stand_ins = (m for m in others if self.health.is_up(m))
        for owner in owners:
            if not self.health.is_up(owner) and (stand_in := next(stand_ins, None)) is not None:
                targets.append(Target(stand_in, owner))
        return targets or [Target(m) for m in owners]

    def substitute(self, digest_hash: str, tried: set[str]) -> str | None:
        """The next live member of the slot's preference list not tried yet."""
        for member in self.tables.current.preference(slot_of(digest_hash)):
            if member not in tried and self.health.is_up(member):
                return member
        return None

    def lookup_order(self, digest_hash: str) -> tuple[str, ...]:
        if self._epoch != self.health.epoch:
            self._lookups.clear()
            self._epoch = self.health.epoch
        slot = slot_of(digest_hash)
        order = self._lookups.get(slot)
        if order is None:
            members = [t.member for t in self.write_set(digest_hash)]
            if self.tables.previous is not None:
                members += [t.member for t in self.write_set(digest_hash, self.tables.previous)]
            order = self._lookups[slot] = tuple(dict.fromkeys(members))
        return order

    def read_order(self, digest_hash: str) -> list[str]:
        slot = slot_of(digest_hash)
        members = [*self.lookup_order(digest_hash), *self.tables.current.preference(slot)]
        if self.tables.previous is not None:
            members += self.tables.previous.preference(slot)
        candidates = list(dict.fromkeys(members))
        return [m for m in candidates if self.health.is_up(m)] or candidates
