"""CAS membership: the document gateways place blobs by, and the safe way to change it.

Members are the configured shards, never "the pods that are up", so placement does not move
when a pod restarts. Changing the shard count runs the old and new tables side by side:

* grow: raise the StatefulSet first; once the new pods are ready, write the new members with
  `previous` set, so gateways write to the new placement, read new-then-old and copy;
* shrink: write the new members with `previous` set while every old pod still runs;
* when every gateway reports the copy done for this exact document, drop `previous`, and only
  then lower the StatefulSet, so a shard is never removed before its data lives elsewhere.

The StatefulSet never runs fewer pods than any member list the document mentions.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bbapi_operator.meta import Owner
from bbapi_operator.pods import CAS_PORT

CONFIG_KEY = "membership.json"


class Phase(enum.StrEnum):
    STABLE = "Stable"
    WAITING_FOR_SHARDS = "WaitingForShards"  # growing: new pods are not ready yet
    MIGRATING = "Migrating"  # gateways are copying data to the new placement
    WAITING_FOR_MIGRATION = "WaitingForMigration"  # spec changed again mid-copy; finish first


@dataclass(frozen=True)
class Progress:
    """One gateway's answer from `GET /status/membership`."""

    generation: str
    migrating: bool
    copied: int = 0
    scanned: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Progress:
        return cls(generation=str(raw["generation"]), migrating=bool(raw["migrating"]),
                   copied=int(raw.get("copied", 0)), scanned=int(raw.get("scanned", 0)))


@dataclass(frozen=True)
class Plan:
    """What to write now: the document, the StatefulSet size and where the change stands."""

    text: str
    replicas: int
    phase: Phase
    shards: int  # members in the written document
    target: int  # members asked for in spec
    copied: int | None = None
    scanned: int | None = None

    @property
    def settled(self) -> bool:
        return self.phase is Phase.STABLE and self.shards == self.target


def configmap_name(owner: Owner) -> str:
    return owner.child("cas-membership")


def members(owner: Owner, shards: int) -> list[dict[str, Any]]:
    """One member per StatefulSet ordinal, addressed through the headless Service."""
    service = owner.child("cas")
    return [{"id": f"{service}-{index}",
             "address": f"{service}-{index}.{service}.{owner.namespace}.svc:{CAS_PORT}",
             "weight": 1.0} for index in range(shards)]


def encode(replication: int, current: list[dict[str, Any]], previous: list[dict[str, Any]] | None) -> str:
    """The exact text of `membership.json`; its sha256 is the generation gateways report."""
    document = {"replication": replication, "members": current,
                "previous": None if previous is None else {"members": previous}}
    return json.dumps(document, indent=2) + "\n"


def generation(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def decode(text: str | None) -> dict[str, Any] | None:
    """The document, or None when there is none yet or it is unreadable (then it is rewritten)."""
    if not text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) and isinstance(document.get("members"), list) else None


def _previous(document: dict[str, Any]) -> list[dict[str, Any]] | None:
    previous = document.get("previous")
    return previous.get("members") if isinstance(previous, dict) else None


def in_flight(text: str | None) -> bool:
    """Whether a copy is running, i.e. whether the gateways need to be asked."""
    document = decode(text)
    return document is not None and _previous(document) is not None


def copy_done(reports: Sequence[Progress], text: str) -> bool:
    """Every gateway asked has loaded this document and finished copying; none asked is not done."""
    current = generation(text)
    return bool(reports) and all(r.generation == current and not r.migrating for r in reports)


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["id"] for entry in entries]


def _plan(text: str, current: list[dict[str, Any]], previous: list[dict[str, Any]] | None, shards: int,
          phase: Phase, reports: Sequence[Progress] = ()) -> Plan:
    mine = [r for r in reports if r.generation == generation(text)]
    in_copy = previous is not None  # every caller passes `previous` exactly in the copying phases
    return Plan(text=text, replicas=max(shards, len(current), len(previous or [])), phase=phase,
                shards=len(current), target=shards,
                copied=sum(r.copied for r in mine) if in_copy else None,
                scanned=sum(r.scanned for r in mine) if in_copy else None)


def plan(owner: Owner, shards: int, replication: int, current_text: str | None, ready_shards: int,
         reports: Sequence[Progress] = ()) -> Plan:
    """Decide the next step of the membership protocol; see the module docstring."""
    target = members(owner, shards)
    document = decode(current_text)
    if document is None or current_text is None:
        return _plan(encode(replication, target, None), target, None, shards, Phase.STABLE)
    live, previous = document["members"], _previous(document)
    if previous is not None:
        if copy_done(reports, current_text):
            return _plan(encode(replication, live, None), live, None, shards, Phase.STABLE)
        phase = Phase.MIGRATING if _ids(live) == _ids(target) else Phase.WAITING_FOR_MIGRATION
        return _plan(current_text, live, previous, shards, phase, reports)
    if _ids(live) == _ids(target):
        return _plan(encode(replication, target, None), target, None, shards, Phase.STABLE)
    if len(target) > len(live) and ready_shards < len(target):
        return _plan(current_text, live, None, shards, Phase.WAITING_FOR_SHARDS)
    return _plan(encode(replication, target, live), target, live, shards, Phase.MIGRATING)


def configmap(owner: Owner, text: str) -> dict[str, Any]:
    """Mounted as a directory (not subPath) into gateways, so updates reach running pods."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": owner.metadata("cas", name=configmap_name(owner)),
            "data": {CONFIG_KEY: text}}
