"""Spec changes that would destroy or strand data are refused with a condition, and the shard
volumes are grown in place, with the cache budget following their real capacity."""

from __future__ import annotations

import logging

import pytest
from bbapi_operator import crd
from bbapi_operator.meta import Owner

from tests.operator.cluster import NAMESPACE, Cluster, eventually
from tests.operator.emulator import Gate
from tests.operator.test_lifecycle import CR, DISTRIBUTED, POSTGRES, ready, reason

GiB = 2**30


def budget(cluster: Cluster) -> int:
    shards = cluster.get("StatefulSet", "demo-cas") or {}
    env = {e["name"]: e.get("value") for e in shards["spec"]["template"]["spec"]["containers"][0]["env"]}
    return int(env["BBAPI_MAX_SIZE_BYTES"])


async def add_claims(cluster: Cluster, size: str, storage_class: str, *, expandable: bool, count: int = 3) -> None:
    """What the StatefulSet controller would create for each shard, bound at `size`, and their
    StorageClass."""
    klass = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": storage_class},
             "provisioner": "example.com/disk", "allowVolumeExpansion": expandable}
    response = await cluster.server.post("/apis/storage.k8s.io/v1/storageclasses", json=klass)
    assert response.status == 200, await response.text()
    uid = (cluster.get(CR, "demo") or {})["metadata"]["uid"]
    labels = Owner("demo", NAMESPACE, uid).labels("cas")
    for i in range(count):
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": f"data-demo-cas-{i}", "namespace": NAMESPACE, "labels": labels},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                          "storageClassName": storage_class},
                 "status": {"phase": "Bound", "capacity": {"storage": size}}}
        response = await cluster.server.post(cluster.url("PersistentVolumeClaim"), json=claim)
        assert response.status == 200, await response.text()


def requested(cluster: Cluster) -> set[str]:
    return {(cluster.get("PersistentVolumeClaim", f"data-demo-cas-{i}") or {})["spec"]["resources"]["requests"]
            ["storage"] for i in range(3)}


async def test_switching_database_mode_is_refused_and_nothing_is_pruned(cluster: Cluster) -> None:
    embedded = {"StatefulSet": {"demo-server"}, "Service": {"demo-gateway"}, "Secret": {"demo-api-key"}}
    async with cluster.operator():
        await cluster.create("demo", {"database": {"embedded": True}})
        await eventually(lambda: cluster.children() == embedded, what="embedded children")
        await cluster.mark_ready()
        await eventually(lambda: reason(cluster, "Ready") == ("True", "AllComponentsReady"))

        await cluster.patch(CR, "demo", {"spec": {"database": {"embedded": False} | POSTGRES}})
        await eventually(lambda: reason(cluster, "Degraded") == ("True", "ModeChangeRefused"), what="refusal")
        assert cluster.children() == embedded  # the single pod and its SQLite volume stay
        assert reason(cluster, "Ready") == ("True", "AllComponentsReady")

        await cluster.patch(CR, "demo", {"spec": {"database": {"embedded": True, "postgres": None}}})
        await eventually(lambda: reason(cluster, "Degraded") == ("False", "AsExpected"), what="back to normal")


async def test_a_refused_change_undone_while_a_pass_runs_clears_the_refusal(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    """The spec goes A -> B (refused) -> A while passes run back to back: the pass that saw B must
    not have the last word. (kopf's own change tracking saw A handled and A again, and nothing
    cleared the refusal until the slow resync.)"""
    caplog.set_level(logging.INFO, logger="kopf.objects")
    embedded = {"database": {"embedded": True}}

    def child_events() -> int:
        return sum("'child-changed' succeeded" in r.getMessage() for r in caplog.records)

    async with cluster.operator():
        await cluster.create("demo", embedded)
        await eventually(lambda: "StatefulSet" in cluster.children(), what="children")
        await cluster.mark_ready()
        await eventually(lambda: reason(cluster, "Ready") == ("True", "AllComponentsReady"))
        gate = cluster.server.gate = Gate(lambda r: r.subresource == "status" and r.resource is not None
                                          and r.resource.plural == crd.PLURAL)
        try:
            await cluster.patch(CR, "demo", {"spec": {"image": "bbapi:v2"}})
            await eventually(lambda: gate.waiting == 1, what="a pass writing its status")
            seen = child_events()
            await cluster.delete("Service", "demo-gateway")  # a child event: one more pass is due
            await eventually(lambda: child_events() > seen, what="the child event handled")
            await cluster.patch(CR, "demo", {"spec": {"database": {"embedded": False} | POSTGRES}})
            gate.let_one_through()
            await eventually(lambda: gate.waiting == 1, what="the next pass (it sees B) writing its status")
            await cluster.patch(CR, "demo", {"spec": {"database": {"embedded": True, "postgres": None}}})
            gate.let_one_through()
            await eventually(lambda: reason(cluster, "Degraded") == ("True", "ModeChangeRefused"), what="refusal")
            await eventually(lambda: gate.waiting == 1, what="a pass for the spec put back")
            gate.let_one_through()
        finally:
            cluster.server.gate = None
            while gate.waiting:
                gate.let_one_through()
        await eventually(lambda: reason(cluster, "Degraded") == ("False", "AsExpected"), what="refusal cleared")
        assert "Service" in cluster.children()


async def test_storage_class_change_is_refused(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED | {"cas": {"storageClassName": "ssd"}, "image": "bbapi:v1"})
        await cluster.patch(CR, "demo", {"spec": {"cas": {"storageClassName": "hdd"}, "image": "bbapi:v2"}})
        await eventually(lambda: reason(cluster, "Degraded") == ("True", "ImmutableField"), what="refusal")
        assert "cas.storageClassName" in cluster.condition("demo", "Degraded")["message"]
        shards = cluster.get("StatefulSet", "demo-cas") or {}
        assert shards["spec"]["template"]["spec"]["containers"][0]["image"] == "bbapi:v1"  # nothing applied
        await cluster.patch(CR, "demo", {"spec": {"cas": {"storageClassName": "ssd"}}})
        await eventually(lambda: reason(cluster, "Degraded") == ("False", "AsExpected"))
        await eventually(lambda: (cluster.get("StatefulSet", "demo-cas") or {})["spec"]["template"]["spec"]
                         ["containers"][0]["image"] == "bbapi:v2", what="the rest applied")


async def test_growing_the_volume_expands_claims_and_the_budget_follows_capacity(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED | {"cas": {"storageClassName": "standard"}})
        assert budget(cluster) == int(50 * GiB * 0.8)
        await add_claims(cluster, "50Gi", "standard", expandable=True)

        await cluster.patch(CR, "demo", {"spec": {"cas": {"volumeSize": "100Gi"}}})
        await eventually(lambda: requested(cluster) == {"100Gi"}, what="claims expanded")
        assert budget(cluster) == int(50 * GiB * 0.8)  # the disks have not grown yet

        for i in range(3):  # the volume plugin finishes the resize
            await cluster.patch("PersistentVolumeClaim", f"data-demo-cas-{i}",
                                {"status": {"capacity": {"storage": "100Gi"}}}, subresource="status")
        await eventually(lambda: budget(cluster) == int(100 * GiB * 0.8), what="budget follows capacity")
        template = (cluster.get("StatefulSet", "demo-cas") or {})["spec"]["volumeClaimTemplates"][0]
        assert template["spec"]["resources"]["requests"]["storage"] == "50Gi"  # immutable: left as it was

        await cluster.patch(CR, "demo", {"spec": {"cas": {"volumeSize": "60Gi"}}})  # below the claims' 100Gi
        await eventually(lambda: reason(cluster, "Degraded") == ("True", "VolumeShrinkRefused"), what="refusal")
        assert requested(cluster) == {"100Gi"} and budget(cluster) == int(100 * GiB * 0.8)


async def test_a_volume_that_cannot_grow_is_reported_and_the_rest_applies(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED | {"cas": {"storageClassName": "fixed"}})
        await add_claims(cluster, "50Gi", "fixed", expandable=False)
        await cluster.patch(CR, "demo", {"spec": {"cas": {"volumeSize": "80Gi"}, "metadata": {"replicas": 3}}})
        await eventually(lambda: reason(cluster, "Degraded") == ("True", "VolumeExpansionRefused"), what="report")
        assert "StorageClass" in cluster.condition("demo", "Degraded")["message"]
        assert (cluster.get("Deployment", "demo-metadata") or {})["spec"]["replicas"] == 3
        assert requested(cluster) == {"50Gi"} and budget(cluster) == int(50 * GiB * 0.8)


async def test_too_long_a_name_is_refused(cluster: Cluster) -> None:
    name = "n" * (crd.MAX_NAME_LENGTH + 1)
    async with cluster.operator():
        await cluster.create(name, DISTRIBUTED)
        await eventually(lambda: cluster.condition(name, "Degraded").get("reason") == "InvalidSpec")
        assert "at most 45 characters" in cluster.condition(name, "Degraded")["message"]
        assert cluster.children() == {}
