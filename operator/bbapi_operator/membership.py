"""CAS membership in Kubernetes: the StatefulSet's pods as members, the document as a ConfigMap.

The document model and the change protocol are the blob store's own
(services.blobstore.cluster.membership and .resize), shared with `bbapi cluster`; this module
names the members after the StatefulSet's ordinals and wraps the document in its ConfigMap.
The StatefulSet never runs fewer pods than `Plan.replicas`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bbapi_operator.meta import Owner
from bbapi_operator.pods import CAS_PORT
from services.blobstore.cluster import resize
from services.blobstore.cluster.membership import Member, Progress

CONFIG_KEY = "membership.json"


def configmap_name(owner: Owner) -> str:
    return owner.child("cas-membership")


def members(owner: Owner, shards: int, zones: Mapping[str, str] | None = None) -> tuple[Member, ...]:
    """One member per StatefulSet ordinal, addressed through the headless Service, in its zone if known."""
    service = owner.child("cas")
    return tuple(Member(id=f"{service}-{i}", address=f"{service}-{i}.{service}.{owner.namespace}.svc:{CAS_PORT}",
                        zone=(zones or {}).get(f"{service}-{i}")) for i in range(shards))


def plan(owner: Owner, shards: int, replication: int, current_text: str | None, ready_shards: int,
         reports: Sequence[Progress] = (), zones: Mapping[str, str] | None = None) -> resize.Plan:
    """The next step towards `shards` pods' worth of members (services.blobstore.cluster.resize)."""
    return resize.plan(members(owner, shards, zones), replication, current_text, ready_shards, reports)


def configmap(owner: Owner, text: str) -> dict[str, Any]:
    """Mounted as a directory (not subPath) into gateways, so updates reach running pods."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": owner.metadata("cas", name=configmap_name(owner)),
            "data": {CONFIG_KEY: text}}
