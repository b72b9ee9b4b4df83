"""The real operator (kopf + reconcile) against the emulated API server, end to end."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from bbapi_operator import crd, membership

from services.blobstore.cluster.membership import Progress, generation_of
from tests.operator.cluster import NAMESPACE, Cluster, eventually

CR = crd.KIND
POSTGRES: dict[str, Any] = {"postgres": {"secretRef": {"name": "pg"}}}
DISTRIBUTED: dict[str, Any] = {"database": POSTGRES}
WORKLOADS = {"Deployment": {"demo-gateway", "demo-metadata", "demo-logs"}, "StatefulSet": {"demo-cas"}}
DISTRIBUTED_CHILDREN = WORKLOADS | {
    "Service": {"demo-gateway", "demo-metadata", "demo-logs", "demo-cas"},
    "ConfigMap": {"demo-cas-membership"},
    "PodDisruptionBudget": {"demo-gateway", "demo-metadata", "demo-logs", "demo-cas"},
    "HorizontalPodAutoscaler": {"demo-gateway"},
    "Secret": {"demo-api-key"},
}


def status(cluster: Cluster) -> dict[str, Any]:
    return dict((cluster.get(CR, "demo") or {}).get("status") or {})


def reason(cluster: Cluster, kind: str) -> tuple[str, str] | None:
    condition = cluster.condition("demo", kind)
    return (condition["status"], condition["reason"]) if condition else None


def document(cluster: Cluster) -> tuple[str, dict[str, Any]]:
    configmap = cluster.get("ConfigMap", "demo-cas-membership") or {}
    text = configmap["data"][membership.CONFIG_KEY]
    return text, json.loads(text)


def shards(cluster: Cluster) -> int:
    return int((cluster.get("StatefulSet", "demo-cas") or {})["spec"]["replicas"])


async def ready(cluster: Cluster, spec: dict[str, Any]) -> None:
    """Create `demo`, wait for its children, mark them ready, wait for Ready."""
    await cluster.create("demo", spec)
    await eventually(lambda: reason(cluster, "Ready") == ("False", "ComponentsNotReady"), what="children")
    await cluster.mark_ready()
    await eventually(lambda: reason(cluster, "Ready") == ("True", "AllComponentsReady"), what="Ready")


async def test_create_builds_owned_children_and_status_follows_the_pods(cluster: Cluster) -> None:
    async with cluster.operator():
        await cluster.create("demo", DISTRIBUTED)
        await eventually(lambda: reason(cluster, "Ready") == ("False", "ComponentsNotReady"), what="status")
        assert cluster.children() == DISTRIBUTED_CHILDREN
        uid = (cluster.get(CR, "demo") or {})["metadata"]["uid"]
        for kind, names in cluster.children().items():
            for name in names:
                refs = (cluster.get(kind, name) or {})["metadata"]["ownerReferences"]
                assert [(r["uid"], r["controller"]) for r in refs] == [(uid, True)], (kind, name)
        assert shards(cluster) == 3
        assert [m["id"] for m in document(cluster)[1]["members"]] == ["demo-cas-0", "demo-cas-1", "demo-cas-2"]
        gateway = cluster.get("Deployment", "demo-gateway") or {}
        assert gateway["spec"]["template"]["spec"]["containers"][0]["image"] == "bbapi:test"

        current = status(cluster)
        assert current["observedGeneration"] == 1
        assert {c["name"]: (c["ready"], c["desired"]) for c in current["components"]} == {
            "cas": (0, 3), "metadata": (0, 2), "logs": (0, 2), "gateway": (0, 1)}
        assert reason(cluster, "Progressing") == ("True", "RollingOut")
        assert reason(cluster, "Degraded") == ("False", "AsExpected")
        assert current["endpoints"] == {"grpc": f"grpc://demo-gateway.{NAMESPACE}.svc:1985",
                                        "http": f"http://demo-gateway.{NAMESPACE}.svc:8080"}
        assert current["apiKeySecret"] == {"name": "demo-api-key", "key": "api-key"}
        assert current["cas"] == {"shards": 3, "desiredShards": 3, "phase": "Stable"}

        await cluster.mark_ready(only="demo-cas")  # status follows each workload, not only the object
        await eventually(lambda: ("cas 3/3" not in cluster.condition("demo", "Ready")["message"]
                                  and "gateway 0/1" in cluster.condition("demo", "Ready")["message"]))
        await cluster.mark_ready()
        await eventually(lambda: reason(cluster, "Ready") == ("True", "AllComponentsReady"), what="Ready")
        assert reason(cluster, "Progressing") == ("False", "Stable")
        assert {c["name"]: c["ready"] for c in status(cluster)["components"]} == {
            "cas": 3, "metadata": 2, "logs": 2, "gateway": 1}
        assert cluster.probe.calls == 0  # no membership change: the gateways are never asked


async def test_update_patches_children_and_rolls_out(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED)
        await cluster.patch(CR, "demo", {"spec": {"image": "bbapi:v2", "metadata": {"replicas": 4},
                                                  "gateway": {"autoscaling": {"enabled": False}, "replicas": 3}}})

        def rolled() -> bool:
            images = {c["image"] for kind, names in WORKLOADS.items() for name in names
                      for c in (cluster.get(kind, name) or {})["spec"]["template"]["spec"]["containers"]}
            metadata = cluster.get("Deployment", "demo-metadata") or {}
            gateway = cluster.get("Deployment", "demo-gateway") or {}
            return (images == {"bbapi:v2"} and metadata["spec"]["replicas"] == 4
                    and gateway["spec"]["replicas"] == 3 and not cluster.names("HorizontalPodAutoscaler"))

        await eventually(rolled, what="patched children")
        await eventually(lambda: status(cluster).get("observedGeneration") == 2)
        assert reason(cluster, "Progressing") == ("True", "RollingOut")
        await cluster.mark_ready()
        await eventually(lambda: reason(cluster, "Ready") == ("True", "AllComponentsReady"))
        assert cluster.names("Deployment") == WORKLOADS["Deployment"]


async def test_growing_shards_raises_pods_then_migrates_then_settles(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED)
        await cluster.patch(CR, "demo", {"spec": {"cas": {"shards": 4}}})
        await eventually(lambda: shards(cluster) == 4, what="StatefulSet raised first")
        await eventually(lambda: status(cluster).get("cas", {}).get("phase") == "WaitingForShards")
        assert len(document(cluster)[1]["members"]) == 3  # not before the new pod is ready
        assert reason(cluster, "Progressing") == ("True", "WaitingForShards")

        await cluster.mark_ready(only="demo-cas")
        await eventually(lambda: document(cluster)[1]["previous"] is not None, what="membership change")
        text, moving = document(cluster)
        assert [m["id"] for m in moving["members"]] == [f"demo-cas-{i}" for i in range(4)]
        assert [m["id"] for m in moving["previous"]["members"]] == [f"demo-cas-{i}" for i in range(3)]
        await eventually(lambda: reason(cluster, "Progressing") == ("True", "Migrating"))

        cluster.probe.reports = [Progress(generation_of(text), migrating=True, copied=7, scanned=20)]
        await eventually(lambda: status(cluster)["cas"].get("copied") == 7, what="progress in status")
        cluster.probe.reports = [Progress(generation_of(text), migrating=False, copied=20, scanned=20)]
        await eventually(lambda: document(cluster)[1]["previous"] is None, what="previous dropped")
        await eventually(lambda: reason(cluster, "Progressing") == ("False", "Stable"))
        assert status(cluster)["cas"] == {"shards": 4, "desiredShards": 4, "phase": "Stable"}
        assert shards(cluster) == 4


async def test_shrinking_never_drops_a_shard_before_its_data_is_copied(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED | {"cas": {"shards": 4}})
        await cluster.patch(CR, "demo", {"spec": {"cas": {"shards": 3}}})
        await eventually(lambda: document(cluster)[1]["previous"] is not None, what="membership change")
        text, moving = document(cluster)
        assert len(moving["members"]) == 3 and len(moving["previous"]["members"]) == 4

        busy = Progress(generation_of(text), migrating=True)
        for reports in ([], [Progress("some-older-generation", migrating=False)], [busy]):
            cluster.probe.reports = reports
            calls = cluster.probe.calls
            await eventually(lambda c=calls: cluster.probe.calls >= c + 2, what="re-checks")  # type: ignore[misc]
            assert shards(cluster) == 4 and document(cluster)[0] == text, reports

        cluster.probe.reports = [Progress(generation_of(text), migrating=False)]
        await eventually(lambda: shards(cluster) == 3, what="shard removed")
        assert document(cluster)[1]["previous"] is None
        writes = [(str(r.url.path), r.data) for r in cluster.server if r.method.value == "PATCH"]
        dropped = next(i for i, (path, data) in enumerate(writes)
                       if path.endswith("/configmaps/demo-cas-membership")
                       and json.loads(data["data"][membership.CONFIG_KEY])["previous"] is None)
        lowered = next(i for i, (path, data) in enumerate(writes)
                       if path.endswith("/statefulsets/demo-cas") and data.get("spec", {}).get("replicas") == 3)
        assert dropped < lowered  # the membership without the old shard is stored first


async def test_restart_resumes_without_duplicates(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED)
    key = (cluster.get("Secret", "demo-api-key") or {})["data"]
    before = len(list(cluster.server))
    async with cluster.operator():
        hpa_list = "/apis/autoscaling/v2/namespaces/builds/horizontalpodautoscalers"
        await eventually(lambda: any(str(r.url.path) == hpa_list for r in list(cluster.server)[before:]),
                         what="a full pass after the restart")
        await asyncio.sleep(0.2)
    after = list(cluster.server)[before:]
    writes = [(r.method.value, str(r.url.path)) for r in after if r.method.value in ("POST", "PATCH", "DELETE")]
    # Nothing created, changed or removed. The one create attempt is the API key Secret, which
    # the operator may create but not read: the server refuses it (409) and the key stays.
    assert [w for w in writes if "/buildbuddyapis/" not in w[1]] == [("POST", "/api/v1/namespaces/builds/secrets")]
    assert cluster.children() == DISTRIBUTED_CHILDREN
    assert (cluster.get("Secret", "demo-api-key") or {})["data"] == key
    assert reason(cluster, "Ready") == ("True", "AllComponentsReady")


async def test_delete_cleans_up_through_owner_references(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED)
        assert not (cluster.get(CR, "demo") or {})["metadata"].get("finalizers")
        await cluster.delete(CR, "demo")
        assert cluster.get(CR, "demo") is None  # no finalizer: gone at once, even with the operator down
        await eventually(lambda: not cluster.children(), what="garbage collection")
        await asyncio.sleep(0.3)
        assert not cluster.children()  # and the operator does not bring anything back


async def test_invalid_spec_is_degraded_and_builds_nothing(cluster: Cluster) -> None:
    async with cluster.operator():
        await cluster.create("demo", {"cas": {"shards": 2}})  # neither embedded nor PostgreSQL
        await eventually(lambda: reason(cluster, "Degraded") == ("True", "InvalidSpec"))
        assert reason(cluster, "Ready") == ("False", "InvalidSpec")
        assert cluster.children() == {}
        await cluster.patch(CR, "demo", {"spec": DISTRIBUTED})
        await eventually(lambda: reason(cluster, "Degraded") == ("False", "AsExpected"))
        assert cluster.children() == DISTRIBUTED_CHILDREN


async def test_api_key_is_created_once_or_taken_from_the_user(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED)
        key = base64.b64decode((cluster.get("Secret", "demo-api-key") or {})["data"]["api-key"]).decode()
        assert len(key) == 20 and key.isalnum()
        await cluster.create("mine", DISTRIBUTED | {"apiKeySecret": {"name": "my-key", "key": "token"}})
        await eventually(lambda: cluster.get("Deployment", "mine-metadata"), what="second object")
        assert "mine-api-key" not in cluster.names("Secret")
        env = (cluster.get("Deployment", "mine-metadata") or {})["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "BBAPI_BOOTSTRAP_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": "my-key", "key": "token"}}} in env


async def test_drift_is_repaired(cluster: Cluster) -> None:
    async with cluster.operator():
        await ready(cluster, DISTRIBUTED)
        await cluster.delete("Deployment", "demo-gateway")
        await eventually(lambda: "demo-gateway" in cluster.names("Deployment"), what="gateway recreated")
        await cluster.patch("StatefulSet", "demo-cas", {"spec": {"replicas": 9}})
        await eventually(lambda: shards(cluster) == 3, what="shard count restored")


async def test_api_errors_are_degraded_then_retried(cluster: Cluster) -> None:
    cluster.server["post", "/apis/policy/v1/namespaces/builds/poddisruptionbudgets"][:1] << 500
    async with cluster.operator():
        await cluster.create("demo", DISTRIBUTED)
        await eventually(lambda: reason(cluster, "Degraded") == ("True", "ReconcileFailed"), what="failure")
        await eventually(lambda: reason(cluster, "Degraded") == ("False", "AsExpected"), what="recovery")
        assert cluster.children() == DISTRIBUTED_CHILDREN


async def test_namespaced_operator_ignores_other_namespaces(cluster: Cluster) -> None:
    other = {"apiVersion": crd.API_VERSION, "kind": CR, "metadata": {"name": "other", "namespace": "elsewhere"},
             "spec": DISTRIBUTED}
    assert (await cluster.server.post(f"/apis/{crd.API_VERSION}/namespaces/elsewhere/{crd.PLURAL}",
                                      json=other)).status == 200
    async with cluster.operator(namespace=NAMESPACE):
        await ready(cluster, DISTRIBUTED)
    assert not any(ns == "elsewhere" for (_, ns, _), obj in cluster.server.objects.items()
                   if not obj.deleted and obj.raw.get("kind") != CR)
