"""The real operator (kopf + reconcile) against an emulated API server, end to end."""

from __future__ import annotations

from typing import Any

from tests.operator.cluster import Cluster, eventually

DISTRIBUTED: dict[str, Any] = {"database": {"postgres": {"secretRef": {"name": "pg"}}}}


async def test_create_builds_children_and_reports_ready(cluster: Cluster) -> None:
    async with cluster.operator():
        await cluster.create("demo", DISTRIBUTED)
        await eventually(lambda: cluster.names("HorizontalPodAutoscaler"), what="children")
        await eventually(lambda: cluster.condition("demo", "Ready").get("reason") == "ComponentsNotReady")
        await cluster.mark_ready()
        await eventually(lambda: cluster.condition("demo", "Ready").get("status") == "True", what="Ready")
    print(cluster.children())
