"""The operator learns each CAS shard's zone from its pod's node and writes it into the membership."""

from __future__ import annotations

import asyncio

from bbapi_operator import membership, zones
from bbapi_operator.kube import KubeApi, connect
from bbapi_operator.meta import Owner

from services.blobstore.cluster import resize
from services.blobstore.cluster.membership import Progress, generation_of
from tests.operator.cluster import NAMESPACE, Cluster, eventually
from tests.operator.test_lifecycle import DISTRIBUTED, document, ready

OWNER = Owner(name="demo", namespace=NAMESPACE, uid="uid-1")


async def add_node(cluster: Cluster, name: str, zone: str | None) -> None:
    labels = {"kubernetes.io/hostname": name} | ({zones.ZONE_LABEL: zone} if zone else {})
    response = await cluster.server.post("/api/v1/nodes", json={
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})
    assert response.status == 200, await response.text()


async def add_shard_pod(cluster: Cluster, ordinal: int, node: str | None) -> None:
    """What the StatefulSet controller and the scheduler would make: pod demo-cas-N, bound to `node`."""
    spec = {"containers": [{"name": "cas", "image": "bbapi:test"}]} | ({"nodeName": node} if node else {})
    response = await cluster.server.post(cluster.url("Pod"), json={
        "apiVersion": "v1", "kind": "Pod", "spec": spec,
        "metadata": {"name": f"demo-cas-{ordinal}", "namespace": NAMESPACE, "labels": OWNER.selector("cas")}})
    assert response.status == 200, await response.text()


def zones_written(cluster: Cluster) -> list[str | None]:
    return [m.get("zone") for m in document(cluster)[1]["members"]]


async def test_shard_zones_come_from_their_nodes_and_the_change_is_copied(cluster: Cluster) -> None:
    for name, zone in (("node-a", "zone-a"), ("node-b", "zone-b"), ("node-c", None)):
        await add_node(cluster, name, zone)
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED)
        assert zones_written(cluster) == [None, None, None]  # written before any pod ran

        for ordinal, node in enumerate(["node-a", "node-b", "node-a"]):
            await add_shard_pod(cluster, ordinal, node)
        await cluster.mark_ready(only="demo-cas")  # the StatefulSet's status changes: a new pass
        await eventually(lambda: document(cluster)[1]["previous"] is not None, what="zones written")
        text, moving = document(cluster)
        assert zones_written(cluster) == ["zone-a", "zone-b", "zone-a"]
        assert [m.get("zone") for m in moving["previous"]["members"]] == [None, None, None]  # copied from there

        cluster.probe.reports = [Progress(generation_of(text), migrating=False)]
        await eventually(lambda: document(cluster)[1]["previous"] is None, what="copy done")
        assert zones_written(cluster) == ["zone-a", "zone-b", "zone-a"]


async def test_other_objects_pods_and_unlabelled_nodes_give_no_zone(cluster: Cluster) -> None:
    await add_node(cluster, "node-a", "zone-a")
    await add_node(cluster, "node-c", None)
    await add_shard_pod(cluster, 0, "node-a")
    await add_shard_pod(cluster, 1, "node-c")  # its node has no zone label
    await add_shard_pod(cluster, 2, None)  # not scheduled yet
    other = Owner(name="other", namespace=NAMESPACE, uid="uid-2")
    response = await cluster.server.post(cluster.url("Pod"), json={
        "apiVersion": "v1", "kind": "Pod", "spec": {"nodeName": "node-a", "containers": []},
        "metadata": {"name": "other-cas-0", "namespace": NAMESPACE, "labels": other.selector("cas")}})
    assert response.status == 200
    # the API server runs on this event loop: the operator's blocking client goes to a thread
    found = await asyncio.to_thread(zones.discover, KubeApi(connect(), timeout=10), OWNER)
    assert found == {"demo-cas-0": "zone-a"}


def test_a_shard_keeps_its_written_zone_until_its_pod_runs_elsewhere() -> None:
    text = resize.document(2, membership.members(OWNER, 3, {"demo-cas-0": "a", "demo-cas-1": "b", "demo-cas-2": "a"}),
                           None)
    assert zones.known({}, text) == {"demo-cas-0": "a", "demo-cas-1": "b", "demo-cas-2": "a"}  # pods rescheduling
    assert zones.known({"demo-cas-2": "c"}, text) == {"demo-cas-0": "a", "demo-cas-1": "b", "demo-cas-2": "c"}
    assert zones.known({"demo-cas-0": "a"}, None) == {"demo-cas-0": "a"}
