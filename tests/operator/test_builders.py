"""The pure builders: what each child looks like for a given spec."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from bbapi_operator import apikey, desired, membership, networking, volumes
from bbapi_operator.meta import LABEL_MANAGED_BY, MANAGED_BY, Owner
from bbapi_operator.spec import Spec, parse

OWNER = Owner(name="demo", namespace="builds", uid="uid-1")
POSTGRES: dict[str, Any] = {"database": {"postgres": {"secretRef": {"name": "pg", "key": "dsn"}}}}


def build(raw: dict[str, Any], shards: int | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    spec = parse(raw, default_image="bbapi:1")
    plan = None if spec.embedded else membership.plan(OWNER, shards or spec.cas.shards, spec.cas.replication,
                                                       None, 0)
    budget = None if plan is None else volumes.cache_budget({}, "demo-cas", plan.replicas, spec.cas.volume_size)
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in desired.children(OWNER, spec, plan, budget)}


def container(obj: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if name is None or c["name"] == name)


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def workloads(objects: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for (kind, _), o in objects.items() if kind in ("Deployment", "StatefulSet")]


def test_distributed_children() -> None:
    objects = build(POSTGRES)
    assert sorted(objects) == sorted([
        ("ConfigMap", "demo-cas-membership"), ("Service", "demo-cas"), ("StatefulSet", "demo-cas"),
        ("Service", "demo-metadata"), ("Deployment", "demo-metadata"), ("Service", "demo-logs"),
        ("Deployment", "demo-logs"), ("Deployment", "demo-gateway"), ("Service", "demo-gateway"),
        ("PodDisruptionBudget", "demo-gateway"), ("PodDisruptionBudget", "demo-metadata"),
        ("PodDisruptionBudget", "demo-logs"), ("PodDisruptionBudget", "demo-cas"),
        ("HorizontalPodAutoscaler", "demo-gateway")])
    # The membership must be stored before the StatefulSet can shrink.
    kinds = [kind for kind, _ in objects]
    assert kinds.index("ConfigMap") < kinds.index("StatefulSet")


def test_every_child_is_owned_labelled_and_namespaced() -> None:
    for obj in [*build(POSTGRES).values(), *build({"database": {"embedded": True}}).values()]:
        meta = obj["metadata"]
        assert meta["namespace"] == "builds"
        assert meta["ownerReferences"] == [{"apiVersion": "bbapi.dev/v1alpha1", "kind": "BuildBuddyAPI",
                                            "name": "demo", "uid": "uid-1", "controller": True,
                                            "blockOwnerDeletion": True}]
        assert meta["labels"][LABEL_MANAGED_BY] == MANAGED_BY
        assert meta["labels"]["app.kubernetes.io/instance"] == "demo"


def test_selectors_match_their_pods() -> None:
    objects = build(POSTGRES)
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(objects)]
    for obj in objects.values():
        selector = obj.get("spec", {}).get("selector")
        if selector is None:
            continue
        wanted = selector.get("matchLabels", selector)  # Services select with a plain map
        assert sum(wanted.items() <= labels.items() for labels in pod_labels) == 1, obj["metadata"]["name"]


def test_gateway_follows_the_contract() -> None:
    gateway = build(POSTGRES)[("Deployment", "demo-gateway")]
    c = container(gateway)
    assert c["args"] == ["gateway"] and "command" not in c
    assert {k: env(c)[k] for k in ("BBAPI_GRPC_PORT", "BBAPI_HTTP_PORT", "BBAPI_METADATA_TARGET",
                                   "BBAPI_LOGS_TARGET", "BBAPI_MEMBERSHIP_FILE")} == {
        "BBAPI_GRPC_PORT": "1985", "BBAPI_HTTP_PORT": "8080",
        "BBAPI_METADATA_TARGET": "dns:///demo-metadata.builds.svc:7002",
        "BBAPI_LOGS_TARGET": "dns:///demo-logs.builds.svc:7003",
        "BBAPI_MEMBERSHIP_FILE": "/etc/bbapi/membership.json"}
    # Probes and Prometheus use the plaintext admin port, which the public Service does not expose.
    assert env(c)["BBAPI_ADMIN_PORT"] == "9090" and {"name": "admin", "containerPort": 9090,
                                                      "protocol": "TCP"} in c["ports"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert "BBAPI_TLS_CERT" not in env(c)
    # Mounted as a directory, never subPath: a subPath mount would not see ConfigMap updates.
    assert c["volumeMounts"] == [{"name": "membership", "mountPath": "/etc/bbapi", "readOnly": True}]
    assert gateway["spec"]["template"]["spec"]["volumes"] == [
        {"name": "membership", "configMap": {"name": "demo-cas-membership"}}]
    annotations = gateway["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                           "prometheus.io/path": "/metrics"}
    service = build(POSTGRES)[("Service", "demo-gateway")]
    assert [(p["name"], p["appProtocol"]) for p in service["spec"]["ports"]] == [
        ("grpc", "kubernetes.io/h2c"), ("http", "http")]


@pytest.mark.parametrize("mode", [POSTGRES, {"database": {"embedded": True}}], ids=["gateway", "embedded"])
def test_tls_from_a_secret(mode: dict[str, Any]) -> None:
    objects = build(mode | {"tls": {"secretName": "bbapi-tls"}})
    (workload,) = [w for w in workloads(objects) if w["metadata"]["name"] in ("demo-gateway", "demo-server")]
    c = container(workload)
    assert (env(c)["BBAPI_TLS_CERT"], env(c)["BBAPI_TLS_KEY"]) == ("/etc/bbapi/tls/tls.crt", "/etc/bbapi/tls/tls.key")
    # A directory mount (never subPath), so cert-manager's renewals reach the running process.
    assert {"name": "tls", "mountPath": "/etc/bbapi/tls", "readOnly": True} in c["volumeMounts"]
    assert {"name": "tls", "secret": {"secretName": "bbapi-tls"}} in workload["spec"]["template"]["spec"]["volumes"]
    assert c["readinessProbe"]["httpGet"]["port"] == "admin"  # the kubelet needs no certificate
    service = objects[("Service", "demo-gateway")]
    assert {p["appProtocol"] for p in service["spec"]["ports"]} == {"https"}
    assert 9090 not in {p["port"] for p in service["spec"]["ports"]}
    spec = parse(mode | {"tls": {"secretName": "bbapi-tls"}}, default_image="bbapi:1")
    assert networking.endpoints(OWNER, spec) == {"grpc": "grpcs://demo-gateway.builds.svc:1985",
                                                 "http": "https://demo-gateway.builds.svc:8080"}


def test_autoscaling_owns_gateway_replicas() -> None:
    scaled = build(POSTGRES | {"gateway": {"replicas": 3, "autoscaling": {"maxReplicas": 9}}})
    assert "replicas" not in scaled[("Deployment", "demo-gateway")]["spec"]
    hpa = scaled[("HorizontalPodAutoscaler", "demo-gateway")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 9)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-gateway"}
    fixed = build(POSTGRES | {"gateway": {"replicas": 3, "autoscaling": {"enabled": False}}})
    assert fixed[("Deployment", "demo-gateway")]["spec"]["replicas"] == 3
    assert ("HorizontalPodAutoscaler", "demo-gateway") not in fixed


def test_cas_shards() -> None:
    objects = build(POSTGRES | {"cas": {"shards": 5, "volumeSize": "100Gi", "storageClassName": "ssd"}})
    shards = objects[("StatefulSet", "demo-cas")]
    c = container(shards)
    assert c["args"] == ["cas"]
    variables = env(c)
    assert variables["BBAPI_PORT"] == "7001" and variables["BBAPI_DATA_DIR"] == "/data"
    assert variables["BBAPI_MAX_SIZE_BYTES"] == str(int(100 * 2**30 * 0.8))
    assert variables["BBAPI_SHARD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert variables["BBAPI_METRICS_PORT"] == "9090"
    assert c["readinessProbe"]["grpc"] == {"port": 7001} and c["livenessProbe"]["grpc"] == {"port": 7001}
    startup = c["startupProbe"]  # an index rebuild at start must not get the shard killed
    assert startup["grpc"] == {"port": 7001} and startup["periodSeconds"] * startup["failureThreshold"] >= 1800
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    spec = shards["spec"]
    assert (spec["replicas"], spec["serviceName"]) == (5, "demo-cas")
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}},
                             "storageClassName": "ssd"}
    headless = objects[("Service", "demo-cas")]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True


def test_gateways_balance_over_every_metadata_and_logs_pod() -> None:
    objects = build(POSTGRES)
    for component, port in (("metadata", 7002), ("logs", 7003)):
        service = objects[("Service", f"demo-{component}")]["spec"]
        assert service["clusterIP"] == "None" and "publishNotReadyAddresses" not in service  # ready pods only
        target = env(container(objects[("Deployment", "demo-gateway")]))[f"BBAPI_{component.upper()}_TARGET"]
        assert target == f"dns:///demo-{component}.builds.svc:{port}"  # round robin over the resolved pods


def test_cas_replicas_come_from_the_membership_plan() -> None:
    assert build(POSTGRES | {"cas": {"shards": 3}}, shards=5)[("StatefulSet", "demo-cas")]["spec"]["replicas"] == 5


@pytest.mark.parametrize(("component", "port"), [("metadata", "7002"), ("logs", "7003")])
def test_database_backed_components(component: str, port: str) -> None:
    deployment = build(POSTGRES | {"apiKeySecret": {"name": "keys", "key": "k"}})[("Deployment", f"demo-{component}")]
    c = container(deployment)
    variables = env(c)
    assert c["args"] == [component] and variables["BBAPI_PORT"] == port
    assert variables["BBAPI_DATABASE"] == {"secretKeyRef": {"name": "pg", "key": "dsn"}}
    assert variables["BBAPI_METRICS_PORT"] == "9090"
    bootstrap = variables.get("BBAPI_BOOTSTRAP_API_KEY")
    assert bootstrap == ({"secretKeyRef": {"name": "keys", "key": "k"}} if component == "metadata" else None)
    (migrate,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert migrate["args"] == ["migrate"]
    assert env(migrate)["BBAPI_DATABASE"] == {"secretKeyRef": {"name": "pg", "key": "dsn"}}
    assert c["readinessProbe"]["grpc"] == {"port": int(port)}


def test_embedded_runs_one_pod() -> None:
    objects = build({"database": {"embedded": True}, "service": {"grpcPort": 9000}})
    assert sorted(objects) == [("Service", "demo-gateway"), ("StatefulSet", "demo-server")]
    server = objects[("StatefulSet", "demo-server")]
    c = container(server)
    assert c["args"] == ["serve"] and server["spec"]["replicas"] == 1
    variables = env(c)
    assert (variables["BBAPI_DATA_DIR"], variables["BBAPI_GRPC_PORT"]) == ("/data", "9000")
    assert variables["BBAPI_BOOTSTRAP_API_KEY"] == {"secretKeyRef": {"name": "demo-api-key", "key": "api-key"}}
    service = objects[("Service", "demo-gateway")]["spec"]
    assert service["selector"]["app.kubernetes.io/component"] == "server"
    assert [(p["name"], p["port"]) for p in service["ports"]] == [("grpc", 9000), ("http", 8080)]


def test_pods_meet_the_restricted_profile() -> None:
    for workload in workloads(build(POSTGRES)):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["enableServiceLinks"] is False
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
            assert c["image"] == "bbapi:1" and "command" not in c


def test_spec_switches_reach_every_pod() -> None:
    objects = build(POSTGRES | {"metrics": {"enabled": False}, "imagePullSecrets": [{"name": "regcred"}],
                                "tracing": {"exporter": "otlp", "endpoint": "otel:4317"}})
    for workload in workloads(objects):
        template = workload["spec"]["template"]
        assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "false"}
        assert template["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
        for c in template["spec"]["containers"]:
            assert env(c)["BBAPI_TRACING_EXPORTER"] == "otlp" and env(c)["BBAPI_OTLP_ENDPOINT"] == "otel:4317"


def test_gateway_service_settings() -> None:
    service = build(POSTGRES | {"service": {"type": "LoadBalancer", "annotations": {"a": "b"}}})[
        ("Service", "demo-gateway")]
    assert service["spec"]["type"] == "LoadBalancer" and service["metadata"]["annotations"] == {"a": "b"}


def test_generated_api_key() -> None:
    key = apikey.generate_key()
    assert len(key) == 20 and key.isalnum() and key.isascii()
    assert apikey.generate_key() != key
    secret = apikey.secret(OWNER, key)
    assert secret["metadata"]["name"] == "demo-api-key"
    assert base64.b64decode(secret["data"]["api-key"]).decode() == key


def test_api_key_reference() -> None:
    spec: Spec = parse({"database": {"embedded": True}}, default_image="x")
    assert apikey.secret_ref(OWNER, spec).name == "demo-api-key"


KNOBS: dict[str, Any] = {
    "nodeSelector": {"pool": "builds"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "bbapi", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}},
    "priorityClassName": "build-critical",
    "podLabels": {"team": "ci", "app.kubernetes.io/component": "mine"},
    "podAnnotations": {"sidecar.istio.io/inject": "false"},
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
}
EVERY_KNOB: dict[str, Any] = POSTGRES | {component: KNOBS for component in ("gateway", "metadata", "logs", "cas")}


def test_scheduling_knobs_reach_each_components_pods() -> None:
    objects = build(EVERY_KNOB | {"logs": {}})  # logs left at the defaults
    for workload in workloads(objects):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        template = workload["spec"]["template"]
        pod = template["spec"]
        if component == "logs":
            assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName"} & pod.keys()
            assert "team" not in template["metadata"]["labels"]
            continue
        assert pod["nodeSelector"] == KNOBS["nodeSelector"] and pod["tolerations"] == KNOBS["tolerations"]
        assert pod["affinity"] == KNOBS["affinity"] and pod["priorityClassName"] == "build-critical"
        assert template["metadata"]["labels"]["team"] == "ci"
        assert template["metadata"]["labels"]["app.kubernetes.io/component"] == component  # ours win
        assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
        assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        for c in pod["containers"] + pod.get("initContainers", []):
            assert env(c)["HTTPS_PROXY"] == "http://proxy:3128"
    embedded = build({"database": {"embedded": True}, "gateway": KNOBS})[("StatefulSet", "demo-server")]
    assert embedded["spec"]["template"]["spec"]["nodeSelector"] == KNOBS["nodeSelector"]


def spread(workload: dict[str, Any]) -> dict[str, str]:
    return {c["topologyKey"]: c["whenUnsatisfiable"] for c in workload["spec"]["template"]["spec"]
            ["topologySpreadConstraints"]}


def test_cas_shards_spread_over_nodes_strictly_and_zones_as_asked() -> None:
    objects = build(POSTGRES)
    assert spread(objects[("StatefulSet", "demo-cas")]) == {
        "kubernetes.io/hostname": "DoNotSchedule", "topology.kubernetes.io/zone": "ScheduleAnyway"}
    strict = build(POSTGRES | {"cas": {"zoneSpread": "DoNotSchedule"}})[("StatefulSet", "demo-cas")]
    assert set(spread(strict).values()) == {"DoNotSchedule"}
    for name in ("demo-gateway", "demo-metadata", "demo-logs"):  # stateless: best effort, never stuck
        assert set(spread(objects[("Deployment", name)]).values()) == {"ScheduleAnyway"}
    for workload in workloads(objects):
        selector = workload["spec"]["selector"]["matchLabels"]
        assert all(c["labelSelector"]["matchLabels"] == selector
                   for c in workload["spec"]["template"]["spec"]["topologySpreadConstraints"])


def test_gateway_leaves_rotation_drains_and_scales_down_slowly() -> None:
    objects = build(POSTGRES)
    pod = objects[("Deployment", "demo-gateway")]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sleep = c["lifecycle"]["preStop"]["exec"]["command"]
    assert env(c)["BBAPI_DRAIN_SECONDS"] == "300"  # several minutes for running builds by default
    assert sleep[0] == "sleep" and pod["terminationGracePeriodSeconds"] > int(sleep[1]) + 300
    short = build(POSTGRES | {"gateway": {"drainSeconds": 30}})[("Deployment", "demo-gateway")]["spec"]["template"]
    assert short["spec"]["terminationGracePeriodSeconds"] > int(sleep[1]) + 30
    assert env(short["spec"]["containers"][0])["BBAPI_DRAIN_SECONDS"] == "30"
    behaviour = objects[("HorizontalPodAutoscaler", "demo-gateway")]["spec"]["behavior"]["scaleDown"]
    assert behaviour["stabilizationWindowSeconds"] >= 300
    assert behaviour["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
