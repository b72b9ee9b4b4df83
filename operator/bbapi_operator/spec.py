"""A typed, defaulted view of a `BuildBuddyAPI` object, so builders never touch raw dicts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bbapi_operator import crd
from bbapi_operator.defaults import apply_defaults

Resources = dict[str, Any]


class InvalidSpec(ValueError):
    """The object breaks a rule the CRD's CEL validations would have rejected."""


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> SecretRef | None:
        return None if raw is None else cls(name=raw["name"], key=raw["key"])


@dataclass(frozen=True)
class Scheduling:
    """Where a component's pods run and what they carry (crd.scheduling)."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    affinity: dict[str, Any]
    priority_class: str
    pod_labels: dict[str, str]
    pod_annotations: dict[str, str]
    extra_env: list[dict[str, Any]]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Scheduling:
        return cls(node_selector=dict(raw.get("nodeSelector", {})), tolerations=list(raw.get("tolerations", [])),
                   affinity=dict(raw.get("affinity", {})), priority_class=raw.get("priorityClassName", ""),
                   pod_labels=dict(raw.get("podLabels", {})), pod_annotations=dict(raw.get("podAnnotations", {})),
                   extra_env=list(raw.get("extraEnv", [])))


@dataclass(frozen=True)
class Component:
    """A stateless Deployment: how many pods, what each may use and where they run."""

    replicas: int
    resources: Resources
    scheduling: Scheduling

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Component:
        return cls(replicas=raw["replicas"], resources=dict(raw["resources"]), scheduling=Scheduling.parse(raw))


@dataclass(frozen=True)
class Autoscaling:
    enabled: bool
    max_replicas: int
    target_cpu_percent: int


@dataclass(frozen=True)
class Gateway(Component):
    autoscaling: Autoscaling
    drain_seconds: int

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Gateway:
        scaling = raw["autoscaling"]
        autoscaling = Autoscaling(enabled=scaling["enabled"], max_replicas=scaling["maxReplicas"],
                                  target_cpu_percent=scaling["targetCPUUtilizationPercentage"])
        return cls(replicas=raw["replicas"], resources=dict(raw["resources"]), scheduling=Scheduling.parse(raw),
                   drain_seconds=raw["drainSeconds"], autoscaling=autoscaling)


@dataclass(frozen=True)
class Cas:
    shards: int
    replication: int
    volume_size: str
    storage_class: str | None
    resources: Resources
    zone_spread: str
    scheduling: Scheduling


@dataclass(frozen=True)
class Service:
    type: str
    grpc_port: int
    http_port: int
    annotations: dict[str, str]


@dataclass(frozen=True)
class Retention:
    """Retention defaults and the janitor, handed to the metadata and logs processes as settings."""

    invocations: str
    audit: str
    janitor: bool
    interval_seconds: int
    batch: int
    dry_run: bool

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Retention:
        janitor = raw["janitor"]
        return cls(invocations=raw["invocations"], audit=raw["audit"], janitor=janitor["enabled"],
                   interval_seconds=janitor["intervalSeconds"], batch=janitor["batch"], dry_run=janitor["dryRun"])


@dataclass(frozen=True)
class Spec:
    image: str
    image_pull_policy: str
    image_pull_secrets: tuple[str, ...]
    gateway: Gateway
    metadata: Component
    logs: Component
    cas: Cas
    embedded: bool
    postgres: SecretRef | None
    api_key_secret: SecretRef | None
    tls_secret: str | None  # kubernetes.io/tls Secret of the public ports; None = plaintext
    service: Service
    metrics: bool
    retention: Retention
    tracing_exporter: str
    tracing_endpoint: str


def parse(raw_spec: Mapping[str, Any] | None, default_image: str) -> Spec:
    """Default the spec with the CRD schema, then check the rules the API server may not have."""
    raw = apply_defaults(crd.spec_schema(), dict(raw_spec or {}))
    cas, database, service, tracing = raw["cas"], raw["database"], raw["service"], raw["tracing"]
    postgres = database.get("postgres")
    spec = Spec(
        image=raw.get("image") or default_image,
        image_pull_policy=raw["imagePullPolicy"],
        image_pull_secrets=tuple(ref["name"] for ref in raw.get("imagePullSecrets", [])),
        gateway=Gateway.parse(raw["gateway"]),
        metadata=Component.parse(raw["metadata"]),
        logs=Component.parse(raw["logs"]),
        cas=Cas(shards=cas["shards"], replication=cas["replication"], volume_size=cas["volumeSize"],
                storage_class=cas.get("storageClassName") or None, resources=dict(cas["resources"]),
                zone_spread=cas["zoneSpread"], scheduling=Scheduling.parse(cas)),
        embedded=database["embedded"],
        postgres=SecretRef.parse(postgres["secretRef"]) if postgres else None,
        api_key_secret=SecretRef.parse(raw.get("apiKeySecret")),
        tls_secret=(raw.get("tls") or {}).get("secretName"),
        service=Service(type=service["type"], grpc_port=service["grpcPort"], http_port=service["httpPort"],
                        annotations=dict(service.get("annotations", {}))),
        metrics=raw["metrics"]["enabled"],
        retention=Retention.parse(raw["retention"]),
        tracing_exporter=tracing["exporter"],
        tracing_endpoint=tracing["endpoint"],
    )
    _check(spec)
    return spec


# The CRD's CEL rules, evaluated on the typed spec: whether `spec` satisfies each one.
CHECKS: dict[crd.Rule, Callable[[Spec], bool]] = {
    crd.AUTOSCALING_ABOVE_FLOOR: lambda spec: (not spec.gateway.autoscaling.enabled
                                               or spec.gateway.autoscaling.max_replicas >= spec.gateway.replicas),
    crd.REPLICATION_WITHIN_SHARDS: lambda spec: spec.cas.replication <= spec.cas.shards,
    crd.DATABASE_CHOSEN: lambda spec: spec.embedded or spec.postgres is not None,
    crd.DATABASE_EXCLUSIVE: lambda spec: not (spec.embedded and spec.postgres is not None),
    crd.DISTINCT_PORTS: lambda spec: spec.service.grpc_port != spec.service.http_port,
    crd.OTLP_ENDPOINT: lambda spec: spec.tracing_exporter != "otlp" or spec.tracing_endpoint != "",
}


def _check(spec: Spec) -> None:
    """Refuse what the API server refuses when it evaluates the CRD's CEL rules (it may not)."""
    for rule in crd.RULES:
        if not CHECKS[rule](spec):
            raise InvalidSpec(f"spec.{rule.field}: {rule.message}")


def check_name(name: str) -> None:
    """The CRD's name rule: every child name must stay within Kubernetes' limits."""
    if len(name) > crd.MAX_NAME_LENGTH:
        raise InvalidSpec(crd.NAME_RULE["message"])
