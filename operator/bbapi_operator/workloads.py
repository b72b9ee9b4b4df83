"""Deployments and StatefulSets: one bbapi process per container, the command picks which."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bbapi_operator import apikey, membership
from bbapi_operator.meta import Owner
from bbapi_operator.networking import balanced_address
from bbapi_operator.pods import (
    ADMIN_PORT,
    CAS_PORT,
    DATA_DIR,
    HARD,
    LOGS_PORT,
    MEMBERSHIP_DIR,
    METADATA_PORT,
    METRICS_PORT,
    TLS_DIR,
    Container,
    Env,
    Placement,
    env,
    env_pod_name,
    env_secret,
    grpc_probe,
    http_probe,
    port,
    template,
)
from bbapi_operator.retention import janitor_env, policy_env
from bbapi_operator.spec import Component, Spec
from bbapi_operator.volumes import DATA_VOLUME

SLOW_START = 360  # x 5 s: a shard rebuilds its index from disk at start, which can take minutes
# A stopping gateway keeps serving this long before SIGTERM, while endpoint controllers and load
# balancers stop sending it new connections; then it drains (gateway.drainSeconds). The grace
# period covers both plus a margin for closing down.
PRESTOP_SECONDS = 10
STOP_MARGIN_SECONDS = 15


def _deployment(owner: Owner, component: str, pod: dict[str, Any], replicas: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": owner.selector(component)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": 5,
        "template": pod,
    }
    if replicas is not None:  # None hands the count to the HPA
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": owner.metadata(component), "spec": spec}


def _statefulset(owner: Owner, component: str, spec: Spec, pod: dict[str, Any], replicas: int,
                 service: str) -> dict[str, Any]:
    claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": spec.cas.volume_size}}}
    if spec.cas.storage_class:
        claim["storageClassName"] = spec.cas.storage_class
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": owner.metadata(component),
        "spec": {
            "serviceName": service,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",  # shards are independent; start them together
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": owner.selector(component)},
            "template": pod,
            "volumeClaimTemplates": [{"metadata": {"name": DATA_VOLUME, "labels": owner.labels(component)},
                                      "spec": claim}],
        },
    }


def _data_mount() -> dict[str, Any]:
    return {"name": DATA_VOLUME, "mountPath": DATA_DIR}


@dataclass(frozen=True)
class Edge:
    """What both public-facing processes (gateway, all-in-one) share: the public ports, the
    plaintext admin port the probes and Prometheus use, and TLS from a mounted Secret (a
    directory mount, not subPath, so a renewed certificate reaches the running pod)."""

    env: list[Env]
    ports: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    volumes: list[dict[str, Any]]

    @classmethod
    def of(cls, spec: Spec) -> Edge:
        grpc_port, http_port = spec.service.grpc_port, spec.service.http_port
        edge = cls(env=[env("GRPC_PORT", grpc_port), env("HTTP_PORT", http_port), env("ADMIN_PORT", ADMIN_PORT),
                        env("DRAIN_SECONDS", spec.gateway.drain_seconds)],
                   ports=[port("grpc", grpc_port), port("http", http_port), port("admin", ADMIN_PORT)],
                   mounts=[], volumes=[])
        if spec.tls_secret:
            edge.env.extend([env("TLS_CERT", f"{TLS_DIR}/tls.crt"), env("TLS_KEY", f"{TLS_DIR}/tls.key")])
            edge.mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
            edge.volumes.append({"name": "tls", "secret": {"secretName": spec.tls_secret}})
        return edge


def gateway(owner: Owner, spec: Spec) -> dict[str, Any]:
    """The stateless edge; reads the CAS membership from a mounted ConfigMap it watches."""
    edge = Edge.of(spec)
    container = Container(
        name="gateway", args=["gateway"], resources=spec.gateway.resources,
        env=[*edge.env,
             env("METADATA_TARGET", balanced_address(owner, "metadata", METADATA_PORT)),
             env("LOGS_TARGET", balanced_address(owner, "logs", LOGS_PORT)),
             env("MEMBERSHIP_FILE", f"{MEMBERSHIP_DIR}/{membership.CONFIG_KEY}")],
        ports=edge.ports,
        liveness=http_probe("/healthz", "admin", 10), readiness=http_probe("/readyz", "admin", 5),
        mounts=[{"name": "membership", "mountPath": MEMBERSHIP_DIR, "readOnly": True}, *edge.mounts],
        lifecycle={"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}})
    placement = Placement(spec.gateway.scheduling,
                          grace_seconds=PRESTOP_SECONDS + spec.gateway.drain_seconds + STOP_MARGIN_SECONDS)
    pod = template(owner, "gateway", spec, [container], metrics_port=ADMIN_PORT, placement=placement,
                   volumes=[{"name": "membership", "configMap": {"name": membership.configmap_name(owner)}},
                            *edge.volumes])
    replicas = None if spec.gateway.autoscaling.enabled else spec.gateway.replicas
    return _deployment(owner, "gateway", pod, replicas)


def database_backed(owner: Owner, spec: Spec, component: str) -> dict[str, Any]:
    """metadata or logs: stateless over PostgreSQL, migrated by an init container first.

    Both components run `bbapi migrate` before starting, so migrations must be safe to run
    concurrently (the services take a database lock).
    """
    assert spec.postgres is not None  # spec.parse guarantees it outside embedded mode
    settings: Component = spec.metadata if component == "metadata" else spec.logs
    number = METADATA_PORT if component == "metadata" else LOGS_PORT
    database = env_secret("DATABASE", spec.postgres)
    if component == "metadata":
        extra = [env_secret("BOOTSTRAP_API_KEY", apikey.secret_ref(owner, spec)), *policy_env(spec)]
    else:  # the logs janitor asks metadata for the tenants' policies
        extra = [env("METADATA_TARGET", balanced_address(owner, "metadata", METADATA_PORT))]
    container = Container(
        name=component, args=[component], resources=settings.resources,
        env=[env("PORT", number), database, env("METRICS_PORT", METRICS_PORT), *extra, *janitor_env(spec)],
        ports=[port("grpc", number), port("metrics", METRICS_PORT)],
        liveness=grpc_probe(number, 10), readiness=grpc_probe(number, 5))
    migrate = Container(name="migrate", args=["migrate"], resources=settings.resources, env=[database])
    pod = template(owner, component, spec, [container], metrics_port=METRICS_PORT,
                   placement=Placement(settings.scheduling), init=[migrate])
    return _deployment(owner, component, pod, settings.replicas)


def cas(owner: Owner, spec: Spec, replicas: int, cache_bytes: int) -> dict[str, Any]:
    """CAS shards; `replicas` comes from the membership plan and `cache_bytes` from the real
    volumes (volumes.cache_budget), not straight from spec."""
    container = Container(
        name="cas", args=["cas"], resources=spec.cas.resources,
        env=[env("PORT", CAS_PORT), env("DATA_DIR", DATA_DIR),
             env("MAX_SIZE_BYTES", cache_bytes), env_pod_name("SHARD_ID"),
             env("METRICS_PORT", METRICS_PORT)],
        ports=[port("grpc", CAS_PORT), port("metrics", METRICS_PORT)],
        liveness=grpc_probe(CAS_PORT, 10), readiness=grpc_probe(CAS_PORT, 5),
        startup=grpc_probe(CAS_PORT, 5, failures=SLOW_START), mounts=[_data_mount()])
    # Replicas of a blob sit on distinct shards; shards on distinct nodes (strictly: spreading
    # by one at most still lets more shards than nodes run) and zones (as configured).
    placement = Placement(spec.cas.scheduling, node_spread=HARD, zone_spread=spec.cas.zone_spread)
    pod = template(owner, "cas", spec, [container], metrics_port=METRICS_PORT, placement=placement)
    return _statefulset(owner, "cas", spec, pod, replicas, service=owner.child("cas"))


def server(owner: Owner, spec: Spec) -> dict[str, Any]:
    """The embedded single-pod trial: `bbapi serve` with SQLite and the cache on one volume.

    It uses the gateway's resources and the CAS volume settings.
    """
    edge = Edge.of(spec)
    container = Container(
        name="server", args=["serve"], resources=spec.gateway.resources,
        env=[env("DATA_DIR", DATA_DIR), *edge.env, env_secret("BOOTSTRAP_API_KEY", apikey.secret_ref(owner, spec)),
             *policy_env(spec), *janitor_env(spec)],
        ports=edge.ports,
        liveness=http_probe("/healthz", "admin", 10), readiness=http_probe("/readyz", "admin", 5),
        startup=http_probe("/healthz", "admin", 5, failures=SLOW_START), mounts=[_data_mount(), *edge.mounts])
    pod = template(owner, "server", spec, [container], metrics_port=ADMIN_PORT,
                   placement=Placement(spec.gateway.scheduling,
                                       grace_seconds=spec.gateway.drain_seconds + STOP_MARGIN_SECONDS),
                   volumes=edge.volumes)
    return _statefulset(owner, "server", spec, pod, 1, service=owner.child("gateway"))
