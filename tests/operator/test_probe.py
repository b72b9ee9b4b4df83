"""The real gateway probe: lists gateway pods and asks each ready one over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from bbapi_operator.kube import KubeApi, connect
from bbapi_operator.meta import Owner
from bbapi_operator.probe import STATUS_PATH, PodProbe

from services.blobstore.cluster.membership import Progress
from tests.operator.cluster import NAMESPACE, Cluster

OWNER = Owner(name="demo", namespace=NAMESPACE, uid="uid-1")


def pod(name: str, ip: str, ready: bool, component: str = "gateway") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": OWNER.selector(component)},
            "spec": {"containers": [{"name": "gateway", "image": "bbapi"}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]}}


async def test_asks_every_ready_gateway_pod(cluster: Cluster) -> None:
    # The API server doubles as the gateways: it answers /status/membership on its own port.
    cluster.server["get", STATUS_PATH] << {"generation": "g1", "migrating": False, "copied": 5, "scanned": 6}
    for obj in (pod("gw-a", "127.0.0.1", True), pod("gw-b", "127.0.0.1", True), pod("gw-c", "127.0.0.1", False),
                pod("cas-0", "127.0.0.1", True, component="cas")):
        assert (await cluster.server.post(cluster.url("Pod"), json=obj)).status == 200
    probe = PodProbe(KubeApi(connect(), timeout=5), timeout=2)
    port = cluster.server.url.port
    assert port is not None
    reports = await asyncio.to_thread(probe, OWNER, port)
    assert reports == [Progress("g1", migrating=False, copied=5, scanned=6)] * 2


async def test_unreachable_gateway_counts_as_still_copying(cluster: Cluster) -> None:
    assert (await cluster.server.post(cluster.url("Pod"), json=pod("gw-a", "127.0.0.1", True))).status == 200
    probe = PodProbe(KubeApi(connect(), timeout=5), timeout=2)
    reports = await asyncio.to_thread(probe, OWNER, 1)  # nothing listens on port 1
    assert reports == [Progress(generation="", migrating=True)]
