"""The complete desired set of children for one BuildBuddyAPI, in the order they must be applied."""

from __future__ import annotations

from typing import Any

from bbapi_operator import membership, networking, policies, workloads
from bbapi_operator.meta import Owner
from bbapi_operator.pods import LOGS_PORT, METADATA_PORT
from bbapi_operator.spec import Spec
from services.blobstore.cluster import resize

STATELESS = ("gateway", "metadata", "logs")


def children(owner: Owner, spec: Spec, plan: resize.Plan | None, cache_bytes: int | None) -> list[dict[str, Any]]:
    """Every child object. The membership ConfigMap comes before the CAS StatefulSet, so a
    shrink lowers the pod count only after the document without the old shards is stored.
    `plan` and the shards' `cache_bytes` are required outside embedded mode."""
    if spec.embedded:
        return [workloads.server(owner, spec), networking.gateway(owner, spec)]
    assert plan is not None and cache_bytes is not None
    objects = [
        membership.configmap(owner, plan.text),
        networking.cas_headless(owner),
        workloads.cas(owner, spec, plan.replicas, cache_bytes),
        networking.internal(owner, "metadata", METADATA_PORT),
        workloads.database_backed(owner, spec, "metadata"),
        networking.internal(owner, "logs", LOGS_PORT),
        workloads.database_backed(owner, spec, "logs"),
        workloads.gateway(owner, spec),
        networking.gateway(owner, spec),
    ]
    objects += [policies.disruption_budget(owner, component) for component in (*STATELESS, "cas")]
    if spec.gateway.autoscaling.enabled:
        objects.append(policies.gateway_autoscaler(owner, spec))
    return objects
