"""Availability and scaling policies: PodDisruptionBudgets and the gateway's HPA."""

from __future__ import annotations

from typing import Any

from bbapi_operator.meta import Owner
from bbapi_operator.spec import Spec


def disruption_budget(owner: Owner, component: str) -> dict[str, Any]:
    """At most one pod of a component down at a time for voluntary disruptions (drains).

    With replication >= 2 this keeps every CAS blob readable during a node drain.
    """
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": owner.metadata(component),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": owner.selector(component)}}}


def gateway_autoscaler(owner: Owner, spec: Spec) -> dict[str, Any]:
    """CPU-based HPA; `gateway.replicas` is its floor. It scales up at once but down slowly (one
    pod per two minutes, after ten quiet minutes), so builds are not cut by every CPU dip."""
    scaling = spec.gateway.autoscaling
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": owner.metadata("gateway"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.child("gateway")},
            "minReplicas": spec.gateway.replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_percent}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600,
                                       "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}},
        },
    }
