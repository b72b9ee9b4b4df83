"""Pod and container building blocks shared by every bbapi workload."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bbapi_operator.meta import Owner
from bbapi_operator.spec import Resources, Scheduling, SecretRef, Spec

RUN_AS = 10001
METRICS_PORT = 9090
ADMIN_PORT = METRICS_PORT  # the gateway's plaintext admin port: metrics, probes, /status/membership
TLS_DIR = "/etc/bbapi/tls"
CAS_PORT = 7001
METADATA_PORT = 7002
LOGS_PORT = 7003
MEMBERSHIP_DIR = "/etc/bbapi"
DATA_DIR = "/data"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
SOFT, HARD = "ScheduleAnyway", "DoNotSchedule"

Env = dict[str, Any]


def env(name: str, value: object) -> Env:
    return {"name": f"BBAPI_{name}", "value": str(value)}


def env_secret(name: str, ref: SecretRef) -> Env:
    return {"name": f"BBAPI_{name}", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def env_pod_name(name: str) -> Env:
    return {"name": f"BBAPI_{name}", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def tracing_env(spec: Spec) -> list[Env]:
    """Every process understands the tracing settings, so every container gets them."""
    return [env("TRACING_EXPORTER", spec.tracing_exporter), env("OTLP_ENDPOINT", spec.tracing_endpoint)]


def http_probe(path: str, port: str, period: int, failures: int = 3) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "failureThreshold": failures}


def grpc_probe(port: int, period: int, failures: int = 3) -> dict[str, Any]:
    """Native gRPC probe against grpc.health.v1.Health, which every internal service serves."""
    return {"grpc": {"port": port}, "periodSeconds": period, "failureThreshold": failures}


def port(name: str, number: int) -> dict[str, Any]:
    return {"name": name, "containerPort": number, "protocol": "TCP"}


@dataclass
class Container:
    """One bbapi process: the image's entrypoint is `bbapi`, `args` picks the subcommand.

    Only `args` is set, never `command`, so image-level entrypoint wrappers (e.g. Tilt's
    restart helper) keep working.
    """

    name: str
    args: list[str]
    resources: Resources
    env: list[Env] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)
    liveness: dict[str, Any] | None = None
    readiness: dict[str, Any] | None = None
    startup: dict[str, Any] | None = None  # holds liveness off while a slow start runs
    mounts: list[dict[str, Any]] = field(default_factory=list)
    lifecycle: dict[str, Any] | None = None

    def build(self, spec: Spec, extra_env: Sequence[Env] = ()) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": self.name,
            "image": spec.image,
            "imagePullPolicy": spec.image_pull_policy,
            "args": self.args,
            "env": self.env + tracing_env(spec) + list(extra_env),
            "resources": self.resources,
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
        optional = {"ports": self.ports, "livenessProbe": self.liveness, "readinessProbe": self.readiness,
                    "startupProbe": self.startup, "volumeMounts": self.mounts, "lifecycle": self.lifecycle}
        container.update({key: value for key, value in optional.items() if value})
        return container


def metrics_annotations(spec: Spec, port_number: int) -> dict[str, str]:
    """Prometheus scrape annotations; "false" rather than absent so turning them off sticks."""
    if not spec.metrics:
        return {"prometheus.io/scrape": "false"}
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port_number), "prometheus.io/path": "/metrics"}


@dataclass(frozen=True)
class Placement:
    """How a workload's pods spread over failure domains, and who decides where they may run."""

    scheduling: Scheduling
    node_spread: str = SOFT
    zone_spread: str = SOFT
    grace_seconds: int | None = None  # None keeps Kubernetes' 30 s


def spread(owner: Owner, component: str, placement: Placement) -> list[dict[str, Any]]:
    """One constraint per failure domain (zone, then node), each skewed by at most one pod."""
    return [{"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": how,
             "labelSelector": {"matchLabels": owner.selector(component)}}
            for key, how in ((ZONE, placement.zone_spread), (HOSTNAME, placement.node_spread))]


def template(owner: Owner, component: str, spec: Spec, containers: list[Container], *,
             metrics_port: int, placement: Placement, init: Sequence[Container] = (),
             volumes: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A restricted-profile pod template (non-root, no privilege escalation, no capabilities),
    spread over zones and nodes so one failure takes out as few replicas as possible, with the
    component's scheduling knobs applied (the operator's own labels and settings win)."""
    knobs = placement.scheduling
    pod: dict[str, Any] = {
        "enableServiceLinks": False,  # service env vars like BBAPI_CAS_PORT would shadow settings
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                            "fsGroup": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
        "topologySpreadConstraints": spread(owner, component, placement),
        "containers": [container.build(spec, knobs.extra_env) for container in containers],
    }
    optional = {"initContainers": [container.build(spec, knobs.extra_env) for container in init],
                "volumes": list(volumes),
                "imagePullSecrets": [{"name": name} for name in spec.image_pull_secrets],
                "nodeSelector": knobs.node_selector, "tolerations": knobs.tolerations, "affinity": knobs.affinity,
                "priorityClassName": knobs.priority_class,
                "terminationGracePeriodSeconds": placement.grace_seconds}
    pod.update({key: value for key, value in optional.items() if value})
    return {"metadata": {"labels": knobs.pod_labels | owner.labels(component),
                         "annotations": knobs.pod_annotations | metrics_annotations(spec, metrics_port)},
            "spec": pod}
