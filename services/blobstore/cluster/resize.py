"""Changing the CAS members without losing data: one pure plan, run by the Kubernetes operator
(StatefulSet pods) and by `bbapi cluster` (shard processes) alike.

Members are the configured shards, never "the shards that are up", so placement does not move
when one restarts. A change runs the old and new tables side by side:

* grow: start the new shards first; once they are ready, write the new members with `previous`
  set, so gateways write to the new placement, read new-then-old and copy;
* shrink: write the new members with `previous` set while every old shard still runs;
* a new replication factor, or a member's new zone, is a copy pass over the same members (every
  key gets its new copies);
* when every gateway reports the copy done for this exact document, drop `previous`, and only
  then stop the shards that left, so a shard never goes before its data lives elsewhere.

No fewer shards run than any member list the document names (`Plan.replicas`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from services.blobstore.cluster.membership import Member, MemberList, Membership, Progress, encode, generation_of, parse
from services.common.errors import ApiError


class Phase(enum.StrEnum):
    STABLE = "Stable"
    WAITING_FOR_SHARDS = "WaitingForShards"  # growing: new shards are not ready yet
    MIGRATING = "Migrating"  # gateways are copying data to the new placement
    WAITING_FOR_MIGRATION = "WaitingForMigration"  # the target changed again mid-copy; finish first


@dataclass(frozen=True)
class Plan:
    """What to write now: the document, how many shards to run and where the change stands."""

    text: str
    replicas: int
    phase: Phase
    shards: int  # members in the written document
    target: int  # members asked for
    copied: int | None = None
    scanned: int | None = None

    @property
    def settled(self) -> bool:
        return self.phase is Phase.STABLE and self.shards == self.target


def decode(text: str | None) -> Membership | None:
    """The document, or None when there is none yet or it is unreadable (then it is rewritten)."""
    if not text:
        return None
    try:
        return parse(text)
    except ApiError:
        return None


def in_flight(text: str | None) -> bool:
    """Whether a copy is running, i.e. whether the gateways need to be asked."""
    document = decode(text)
    return document is not None and document.previous is not None


def copy_done(reports: Sequence[Progress], text: str) -> bool:
    """Every gateway asked has loaded this document and finished copying; none asked is not done."""
    current = generation_of(text)
    return bool(reports) and all(r.generation == current and not r.migrating for r in reports)


def _layout(members: Sequence[Member]) -> list[tuple[str, str | None]]:
    """What placement depends on besides weights: the members and their zones."""
    return [(m.id, m.zone) for m in members]


def document(replication: int, members: Sequence[Member], previous: Sequence[Member] | None) -> str:
    return encode(Membership(members=tuple(members), replication=replication,
                             previous=None if previous is None else MemberList(members=tuple(previous))))


def _plan(text: str, current: Sequence[Member], previous: Sequence[Member] | None, target: int, phase: Phase,
          reports: Sequence[Progress] = ()) -> Plan:
    mine = [r for r in reports if r.generation == generation_of(text)]
    in_copy = previous is not None  # every caller passes `previous` exactly in the copying phases
    return Plan(text=text, replicas=max(target, len(current), len(previous or [])), phase=phase,
                shards=len(current), target=target,
                copied=sum(r.copied for r in mine) if in_copy else None,
                scanned=sum(r.scanned for r in mine) if in_copy else None)


def plan(target: Sequence[Member], replication: int, current_text: str | None, ready_shards: int,
         reports: Sequence[Progress] = ()) -> Plan:
    """Decide the next step of the change; see the module docstring."""
    wanted = len(target)
    current = decode(current_text)
    if current is None or current_text is None:
        return _plan(document(replication, target, None), target, None, wanted, Phase.STABLE)
    live, previous = current.members, current.previous.members if current.previous else None
    if previous is not None:
        if copy_done(reports, current_text):
            return _plan(document(current.replication, live, None), live, None, wanted, Phase.STABLE)
        same = _layout(live) == _layout(target) and current.replication == replication
        phase = Phase.MIGRATING if same else Phase.WAITING_FOR_MIGRATION
        return _plan(current_text, live, previous, wanted, phase, reports)
    if _layout(live) == _layout(target):
        if current.replication == replication:
            return _plan(document(replication, target, None), target, None, wanted, Phase.STABLE)
        return _plan(document(replication, target, live), target, live, wanted, Phase.MIGRATING)
    if len(target) > len(live) and ready_shards < len(target):
        return _plan(current_text, live, None, wanted, Phase.WAITING_FOR_SHARDS)
    return _plan(document(replication, target, live), target, live, wanted, Phase.MIGRATING)
