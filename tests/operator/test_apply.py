"""Idempotent apply and pruning, through the real API adapter against the emulated server."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from bbapi_operator import crd
from bbapi_operator.apply import apply, contains, key, live_children, prune, removals
from bbapi_operator.kube import KINDS, KubeApi, connect
from bbapi_operator.meta import Owner
from kubernetes.client.exceptions import ApiException

from tests.operator.cluster import NAMESPACE, Cluster

# The emulated garbage collector deletes children of missing owners, so the owner must exist.
OWNER = Owner(name="demo", namespace=NAMESPACE, uid="uid-1")


def service(annotations: dict[str, str] | None = None, component: str = "gateway") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": OWNER.metadata(component, annotations=annotations),
            "spec": {"selector": OWNER.selector(component), "ports": [{"name": "http", "port": 80}]}}


def converge(api: KubeApi, obj: dict[str, Any]) -> dict[str, Any]:
    """What a reconcile pass does for one child: read the live children, then apply."""
    return apply(api, obj, live_children(api, OWNER).get(key(obj)))


@pytest.fixture
async def api(cluster: Cluster) -> KubeApi:
    owner = {"apiVersion": crd.API_VERSION, "kind": crd.KIND,
             "metadata": {"name": OWNER.name, "namespace": NAMESPACE, "uid": OWNER.uid}, "spec": {}}
    assert (await cluster.server.post(cluster.url(crd.KIND), json=owner)).status == 200
    return KubeApi(connect(), timeout=5)


def test_removals_null_only_what_we_set_before() -> None:
    old = {"metadata": {"annotations": {"a": "1", "b": "2"}}, "spec": {"replicas": 2, "x": {"y": 1}}}
    new = {"metadata": {"annotations": {"a": "1"}}, "spec": {}}
    assert removals(old, new) == {"metadata": {"annotations": {"b": None}}, "spec": {"x": {"y": None}}}


def test_contains_tolerates_server_defaults_but_not_changes() -> None:
    live = {"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}}
    assert contains(live, {"spec": {"ports": [{"name": "http", "port": 80}]}})
    assert not contains(live, {"spec": {"ports": [{"name": "http", "port": 81}]}})
    assert not contains(live, {"spec": {"ports": []}})
    assert not contains(live, {"spec": {"clusterIP": None}})
    assert contains(live, {"spec": {"missing": None}})


async def test_create_then_nothing_then_patch(cluster: Cluster, api: KubeApi) -> None:
    created = await asyncio.to_thread(converge, api, service({"a": "1", "b": "2"}))
    assert created["metadata"]["uid"]
    await asyncio.to_thread(converge, api, service({"a": "1", "b": "2"}))
    assert cluster.writes("PATCH") == []  # unchanged: no write at all
    await asyncio.to_thread(converge, api, service({"a": "1"}))
    live = cluster.get("Service", "demo-gateway")
    assert live is not None and "b" not in live["metadata"]["annotations"]
    assert cluster.writes("POST")[1:] == [KINDS["Service"].path(NAMESPACE)]  # after the owner


async def test_foreign_keys_survive(cluster: Cluster, api: KubeApi) -> None:
    await asyncio.to_thread(converge, api, service({"a": "1"}))
    await cluster.patch("Service", "demo-gateway", {"metadata": {"annotations": {"cloud/lb-id": "x"}}})
    await asyncio.to_thread(converge, api, service(None))
    live = cluster.get("Service", "demo-gateway")
    assert live is not None and live["metadata"]["annotations"]["cloud/lb-id"] == "x"
    assert "a" not in live["metadata"]["annotations"]


async def test_immutable_and_handed_over_fields_are_left_alone(cluster: Cluster, api: KubeApi) -> None:
    claim: dict[str, Any] = {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
    shards: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": OWNER.metadata("cas"),
              "spec": {"replicas": 3, "serviceName": "demo-cas", "selector": {"matchLabels": OWNER.selector("cas")},
                       "template": {"metadata": {"labels": OWNER.selector("cas")}}, "volumeClaimTemplates": [claim]}}
    await asyncio.to_thread(converge, api, shards)
    bigger = copy.deepcopy(shards)
    bigger["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "2Gi"
    await asyncio.to_thread(converge, api, bigger)
    assert cluster.writes("PATCH") == []  # the API server would refuse the change
    no_replicas = copy.deepcopy(shards)
    del no_replicas["spec"]["replicas"]
    no_replicas["spec"]["template"]["metadata"]["labels"]["extra"] = "1"
    await asyncio.to_thread(converge, api, no_replicas)
    live = cluster.get("StatefulSet", "demo-cas")
    assert live is not None and live["spec"]["replicas"] == 3  # handed over (to an HPA), never reset
    assert live["spec"]["template"]["metadata"]["labels"]["extra"] == "1"


async def test_prune_deletes_only_our_unwanted_children(cluster: Cluster, api: KubeApi) -> None:
    keep, extra = service(component="gateway"), service(component="logs")
    foreign = service(component="metadata")
    del foreign["metadata"]["ownerReferences"]  # same labels, not ours
    for obj in (keep, extra, foreign):
        await asyncio.to_thread(api.create, obj)
    live = await asyncio.to_thread(live_children, api, OWNER)
    assert set(live) == {("Service", "demo-gateway"), ("Service", "demo-logs")}
    deleted = await asyncio.to_thread(prune, api, OWNER, [keep], live)
    assert deleted == ["Service/demo-logs"]
    assert cluster.names("Service") == {"demo-gateway", "demo-metadata"}


async def test_missing_objects_read_as_none_and_create_if_absent(cluster: Cluster, api: KubeApi) -> None:
    assert await asyncio.to_thread(api.get, KINDS["ConfigMap"], NAMESPACE, "nope") is None
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": OWNER.metadata("api-key"), "data": {"k": "MQ=="}}
    assert await asyncio.to_thread(api.create_if_absent, secret) is True
    assert await asyncio.to_thread(api.create_if_absent, secret | {"data": {"k": "Mg=="}}) is False
    live = cluster.get("Secret", "demo-api-key")
    assert live is not None and live["data"] == {"k": "MQ=="}
    await asyncio.to_thread(api.delete, KINDS["Secret"], NAMESPACE, "demo-api-key")
    await asyncio.to_thread(api.delete, KINDS["Secret"], NAMESPACE, "demo-api-key")  # already gone: fine


async def test_create_conflicts(cluster: Cluster, api: KubeApi) -> None:
    unlabelled = service(component="logs")
    unlabelled["metadata"]["labels"] = {}  # ours, but invisible to the labelled list
    await asyncio.to_thread(api.create, unlabelled)
    await asyncio.to_thread(apply, api, service(component="logs"), None)
    live = cluster.get("Service", "demo-logs")
    assert live is not None and live["metadata"]["labels"] == OWNER.labels("logs")  # adopted back
    assert cluster.writes("GET").count(cluster.url("Service", "demo-logs")) == 1  # read once, after the 409

    foreign = service(component="metadata")
    del foreign["metadata"]["ownerReferences"]
    await asyncio.to_thread(api.create, foreign)
    with pytest.raises(ApiException) as raised:
        await asyncio.to_thread(apply, api, service(component="metadata"), None)
    assert raised.value.status == 409  # never take over an object that is not ours
