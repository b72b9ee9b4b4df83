"""Shard volumes as they really are, not as spec says they should be.

The cache budget follows the claims' real capacity (an expansion only counts once the volume
has grown), and claims smaller than `cas.volumeSize` are expanded in place; the API server
refuses that where the StorageClass does not allow expansion, and the object says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

CACHE_SHARE = Decimal("0.8")  # of the volume; the rest is headroom for temp files and eviction lag
DATA_VOLUME = "data"
Claims = Mapping[str, Mapping[str, Any]]  # claim name -> live PersistentVolumeClaim


def size(quantity: str | int) -> Decimal:
    return Decimal(parse_quantity(quantity))  # type: ignore[no-untyped-call]


def claim_name(statefulset: str, ordinal: int) -> str:
    """The name the StatefulSet controller gives the data claim of pod `ordinal`."""
    return f"{DATA_VOLUME}-{statefulset}-{ordinal}"


def requested(claim: Mapping[str, Any]) -> Decimal:
    return size(claim["spec"]["resources"]["requests"]["storage"])


def capacity(claim: Mapping[str, Any]) -> Decimal:
    """What the volume has now; before it is bound, what it asked for."""
    provisioned = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
    return requested(claim) if provisioned is None else size(provisioned)


def template_size(statefulset: Mapping[str, Any] | None, wanted: str) -> str:
    """The size new claims get: the live template's (it never changes), else the spec's."""
    if statefulset is None:
        return wanted
    return str(statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"])


def cache_budget(claims: Claims, statefulset: str, replicas: int, new_claim_size: str) -> int:
    """BBAPI_MAX_SIZE_BYTES, one value for every shard: 80% of the smallest volume any of the
    `replicas` shards has, or will get when its claim is created."""
    sizes = [capacity(claims[name]) if (name := claim_name(statefulset, i)) in claims else size(new_claim_size)
             for i in range(replicas)]
    return int(min(sizes) * CACHE_SHARE)


def too_small(claims: Claims, wanted: str) -> list[str]:
    """Claims asking for less than `wanted`: to be expanded."""
    return sorted(name for name, claim in claims.items() if requested(claim) < size(wanted))


def expanding(claims: Claims) -> bool:
    """Whether a volume has not yet grown to what its claim asks for."""
    return any(capacity(claim) < requested(claim) for claim in claims.values())


def expansion(wanted: str) -> dict[str, Any]:
    """The merge-patch that asks for a bigger volume."""
    return {"spec": {"resources": {"requests": {"storage": wanted}}}}
