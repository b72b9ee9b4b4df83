"""Which members a request goes to, from the placement tables and who is up right now.

Pure: given the tables and a liveness predicate, every answer is a function of the digest.

* write set: the slot's first R live members, walking the preference list; a down owner's place
  is taken by the next live member, which holds the copy for it (a hinted hand-off).
* lookup order (FindMissingBlobs, GetActionResult): the write set of the current table, then,
  while a membership change is migrating, that of the previous table.
* read order (ByteStream, BatchReadBlobs): the lookup order, then every other live member, as a
  read of a blob the client was told exists is worth a few more probes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.common.membership import Member
from services.common.placement import Placement, slot_of


@dataclass(frozen=True, slots=True)
class Target:
    """A member to write to; `stands_in_for` names the down owner whose copy it holds."""

    member: Member
    stands_in_for: Member | None = None


@dataclass(frozen=True)
class Tables:
    current: Placement
    previous: Placement | None = None


def _unique(members: list[Member]) -> list[Member]:
    return list({m.id: m for m in members}.values())


@dataclass(frozen=True)
class Router:
    tables: Tables
    is_up: Callable[[str], bool]

    def owners(self, digest_hash: str) -> tuple[Member, ...]:
        return self.tables.current.owners(slot_of(digest_hash))

    def write_set(self, digest_hash: str, placement: Placement | None = None) -> list[Target]:
        table = placement or self.tables.current
        preference = table.preference(slot_of(digest_hash))
        replicas = table.replicas
        live = [m for m in preference if self.is_up(m.id)]
        stand_ins = iter([m for m in live if m not in preference[:replicas]])
        targets = [Target(m) for m in preference[:replicas] if self.is_up(m.id)]
        for owner in preference[:replicas]:
            if not self.is_up(owner.id) and (stand_in := next(stand_ins, None)) is not None:
                targets.append(Target(stand_in, owner))
        return targets

    def substitute(self, digest_hash: str, tried: set[str]) -> Member | None:
        """The next live member of the slot's preference list not tried yet."""
        for member in self.tables.current.preference(slot_of(digest_hash)):
            if member.id not in tried and self.is_up(member.id):
                return member
        return None

    def lookup_order(self, digest_hash: str) -> list[Member]:
        members = [t.member for t in self.write_set(digest_hash)]
        if self.tables.previous is not None:
            members += [t.member for t in self.write_set(digest_hash, self.tables.previous)]
        return _unique(members)

    def read_order(self, digest_hash: str) -> list[Member]:
        slot = slot_of(digest_hash)
        members = self.lookup_order(digest_hash) + list(self.tables.current.preference(slot))
        if self.tables.previous is not None:
            members += self.tables.previous.preference(slot)
        return [m for m in _unique(members) if self.is_up(m.id)]
