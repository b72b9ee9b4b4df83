"""The configured CAS membership: which shards exist, where, and how many replicas to keep.

Read from a JSON file (a ConfigMap in Kubernetes, written by `bbapi cluster` on one machine):
  {"replication": 2,
   "members": [{"id": "cas-0", "address": "host:7001", "weight": 1.0, "zone": "eu-west-1a"}, ...],
   "previous": null | {"members": [...]}}
`zone` is optional (a failure domain: placement puts a key's replicas in distinct zones when it can).
`previous` is set while a membership change is being migrated (see services.blobstore.cluster.migration).
The generation is the SHA-256 of the file's exact text, so whoever wrote it (the operator, the
cluster supervisor) can tell from a gateway's `/status/membership` which document it runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

from services.common.errors import InvalidArgument


class Member(BaseModel, frozen=True):
    id: str = Field(min_length=1)
    address: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)
    zone: str | None = Field(None, min_length=1)

    def document(self) -> dict[str, Any]:
        """The member as the file names it; `zone` only when known, so zoneless documents stay as they were."""
        return self.model_dump(exclude_none=True)


class MemberList(BaseModel, frozen=True):
    members: tuple[Member, ...] = Field(min_length=1)

    @field_validator("members")
    @classmethod
    def _unique(cls, members: tuple[Member, ...]) -> tuple[Member, ...]:
        ids = [m.id for m in members]
        if len(set(ids)) != len(ids):
            raise ValueError(f"member ids must be unique: {ids}")
        return members


class Membership(MemberList, frozen=True):
    replication: int = Field(2, ge=1)
    previous: MemberList | None = None
    _text: str | None = PrivateAttr(None)

    @property
    def generation(self) -> str:
        """Identifies this exact document (the operator compares it with gateway status)."""
        return generation_of(self._text if self._text is not None else encode(self))

    def everyone(self) -> tuple[Member, ...]:
        """Current members, then those only in `previous` (all must be reachable while migrating)."""
        ids = {m.id for m in self.members}
        return self.members + tuple(m for m in (self.previous.members if self.previous else ()) if m.id not in ids)


def generation_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Progress:
    """A gateway's `GET /status/membership`: the document it runs and how its copy is going."""

    generation: str
    migrating: bool
    copied: int = 0
    scanned: int = 0
    removed: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Progress:
        return cls(generation=str(raw["generation"]), migrating=bool(raw["migrating"]),
                   copied=int(raw.get("copied", 0)), scanned=int(raw.get("scanned", 0)),
                   removed=int(raw.get("removed", 0)))


def encode(membership: Membership) -> str:
    """The canonical file text, byte for byte what the operator writes for the same document."""
    document = {"replication": membership.replication,
                "members": [m.document() for m in membership.members],
                "previous": None if membership.previous is None
                else {"members": [m.document() for m in membership.previous.members]}}
    return json.dumps(document, indent=2) + "\n"


def parse(text: str, source: str = "membership") -> Membership:
    try:
        membership = Membership.model_validate_json(text)
    except ValidationError as err:
        raise InvalidArgument(f"{source} is invalid: {err}") from None
    membership._text = text
    return membership


def load(path: Path) -> Membership:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidArgument(f"membership file {path} does not exist") from None
    return parse(text, f"membership file {path}")


def write(path: Path, membership: Membership) -> str:
    """Replace the file atomically (gateways may read it at any moment); returns the generation."""
    return replace(path, encode(membership))


def replace(path: Path, text: str) -> str:
    """Replace the file with this exact document text, atomically; returns the generation."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text)
    temp.replace(path)
    return generation_of(text)
