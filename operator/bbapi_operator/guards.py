"""Spec changes the operator refuses, because applying them would destroy or strand data.

The CRD's transition rules refuse the same changes at the API server; these guards compare the
spec with what actually runs, so they also hold where CEL is off and for objects stored before
the rules existed. A refused change leaves every child as it is and makes the object Degraded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bbapi_operator import volumes
from bbapi_operator.apply import Key
from bbapi_operator.meta import Owner
from bbapi_operator.spec import Spec
from bbapi_operator.status import Problem


def storage_workload(spec: Spec) -> str:
    """The component whose StatefulSet holds the data volumes in this mode."""
    return "server" if spec.embedded else "cas"


def refusal(owner: Owner, spec: Spec, live: Mapping[Key, Mapping[str, Any]],
            claims: volumes.Claims) -> Problem | None:
    other = "cas" if spec.embedded else "server"
    if ("StatefulSet", owner.child(other)) in live:
        return Problem("ModeChangeRefused",
                       "database.embedded cannot change: the other mode would start on empty storage and "
                       "strand this one's data; create a new BuildBuddyAPI instead")
    current = live.get(("StatefulSet", owner.child(storage_workload(spec))))
    if current is None:
        return None
    template = current["spec"]["volumeClaimTemplates"][0]["spec"]
    storage_class = template.get("storageClassName") or None
    if storage_class != spec.cas.storage_class:
        return Problem("ImmutableField", f"cas.storageClassName cannot change on existing volumes "
                                         f"(they use {storage_class or 'the default class'})")
    sizes = [volumes.size(template["resources"]["requests"]["storage"])]
    sizes += [volumes.requested(claim) for claim in claims.values()]
    if volumes.size(spec.cas.volume_size) < max(sizes):
        return Problem("VolumeShrinkRefused", f"cas.volumeSize cannot shrink below {max(sizes)} bytes: "
                                              "volumes only grow")
    return None
