"""The configured CAS membership: which shards exist, where, and how many replicas to keep.

Read from a JSON file (a ConfigMap in Kubernetes, written by `bbapi cluster` on one machine):
  {"replication": 2,
   "members": [{"id": "cas-0", "address": "host:7001", "weight": 1.0}, ...],
   "previous": null | {"members": [...]}}
`previous` is set while a membership change is being migrated (see services.gateway.sharded).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from services.common.errors import InvalidArgument


class Member(BaseModel, frozen=True):
    id: str = Field(min_length=1)
    address: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)


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

    @property
    def generation(self) -> str:
        """Identifies this exact configuration (the operator compares it with gateway status)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def load(path: Path) -> Membership:
    try:
        return Membership.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise InvalidArgument(f"membership file {path} does not exist") from None
    except ValidationError as err:
        raise InvalidArgument(f"membership file {path} is invalid: {err}") from None
