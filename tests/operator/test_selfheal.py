"""Self-healing: every kind of child the operator owns is put back when deleted or edited,
without waiting for an unrelated event (the operator watches each kind)."""

from __future__ import annotations

from typing import Any

import pytest
from bbapi_operator.apply import PRUNABLE

from tests.operator.cluster import Cluster, eventually
from tests.operator.test_lifecycle import DISTRIBUTED, ready

# kind -> (child, an edit a user or another tool might make, where to read the repaired value)
EDITS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "Deployment": ("demo-metadata", {"spec": {"replicas": 7}}, ("spec", "replicas")),
    "StatefulSet": ("demo-cas", {"spec": {"replicas": 9}}, ("spec", "replicas")),
    "Service": ("demo-gateway", {"spec": {"type": "NodePort"}}, ("spec", "type")),
    "ConfigMap": ("demo-cas-membership", {"data": {"membership.json": "{}"}}, ("data", "membership.json")),
    "PodDisruptionBudget": ("demo-cas", {"spec": {"maxUnavailable": 3}}, ("spec", "maxUnavailable")),
    "HorizontalPodAutoscaler": ("demo-gateway", {"spec": {"maxReplicas": 1}}, ("spec", "maxReplicas")),
}


def test_every_owned_kind_is_covered() -> None:
    assert set(EDITS) == set(PRUNABLE)


def read(cluster: Cluster, kind: str, name: str, path: tuple[str, ...]) -> Any:
    value: Any = cluster.get(kind, name) or {}
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


@pytest.mark.parametrize("kind", EDITS)
async def test_deleted_or_edited_child_is_restored(cluster: Cluster, kind: str) -> None:
    name, edit, path = EDITS[kind]
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED)
        original = read(cluster, kind, name, path)
        assert original is not None

        await cluster.delete(kind, name)
        await eventually(lambda: cluster.get(kind, name) is not None, what=f"{kind}/{name} recreated")
        assert read(cluster, kind, name, path) == original

        await cluster.patch(kind, name, edit)
        await eventually(lambda: read(cluster, kind, name, path) == original, what=f"{kind}/{name} restored")
