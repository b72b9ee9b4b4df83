"""The `BuildBuddyAPI` CustomResourceDefinition, built in code so defaults have one source.

The chart ships the rendered YAML in `charts/bbapi/crds/`; a test keeps it equal to `crd()`.
The operator applies the same schema defaults itself (`defaults.py`) so it never depends on
the API server having defaulted an object. Regenerate the chart file with
`python -m bbapi_operator.crd > charts/bbapi/crds/buildbuddyapis.bbapi.dev.yaml`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import yaml

from services.common.durations import PATTERN as DURATION_PATTERN

GROUP = "bbapi.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "BuildBuddyAPI"
PLURAL = "buildbuddyapis"
SINGULAR = "buildbuddyapi"

Schema = dict[str, Any]

# The pattern Kubernetes itself uses for resource.Quantity.
QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
                    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


@dataclass(frozen=True)
class Rule:
    """A CEL validation (`x-kubernetes-validations`) on the object at `spec.<field>`.

    The API server enforces it when it supports CEL; `spec.parse` checks the same condition
    (keyed by this object) so the operator refuses the same objects with the same message.
    """

    field: str
    expression: str
    message: str

    def schema(self) -> Schema:
        return {"rule": self.expression, "message": self.message}


AUTOSCALING_ABOVE_FLOOR = Rule("gateway", "!self.autoscaling.enabled || self.autoscaling.maxReplicas >= self.replicas",
                               "autoscaling.maxReplicas cannot be below replicas")
REPLICATION_WITHIN_SHARDS = Rule("cas", "self.replication <= self.shards", "replication cannot exceed shards")
DATABASE_CHOSEN = Rule("database", "self.embedded || has(self.postgres)",
                       "set database.embedded: true or database.postgres.secretRef")
DATABASE_EXCLUSIVE = Rule("database", "!(self.embedded && has(self.postgres))",
                          "database.embedded and database.postgres are mutually exclusive")
DISTINCT_PORTS = Rule("service", "self.grpcPort != self.httpPort", "grpcPort and httpPort must differ")
OTLP_ENDPOINT = Rule("tracing", "self.exporter != 'otlp' || self.endpoint != ''",
                     "tracing.endpoint is required with the otlp exporter")
RULES = (AUTOSCALING_ABOVE_FLOOR, REPLICATION_WITHIN_SHARDS, DATABASE_CHOSEN, DATABASE_EXCLUSIVE, DISTINCT_PORTS,
         OTLP_ENDPOINT)

# Transition rules (`oldSelf`): changes that would strand or destroy data. The operator refuses
# the same changes by comparing the spec with what runs (guards.py), for servers without CEL.
EMBEDDED_FIXED = Rule("database", "self.embedded == oldSelf.embedded",
                      "database.embedded cannot change: the other mode starts on empty storage; "
                      "create a new BuildBuddyAPI instead")
STORAGE_CLASS_FIXED = Rule("cas", "(has(self.storageClassName) ? self.storageClassName : '') == "
                                  "(has(oldSelf.storageClassName) ? oldSelf.storageClassName : '')",
                           "cas.storageClassName cannot change on existing volumes")
TRANSITIONS = (EMBEDDED_FIXED, STORAGE_CLASS_FIXED)

# StatefulSet names may have at most 52 characters (the controller appends a revision hash to
# them in a 63-character label); the longest one is `<name>-server`.
MAX_NAME_LENGTH = 52 - len("-server")
NAME_RULE = {"rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
             "message": f"metadata.name may have at most {MAX_NAME_LENGTH} characters (child StatefulSet names)"}


def _obj(description: str, properties: Schema, *, required: tuple[str, ...] = (),
         default: Any = None, rules: tuple[Rule, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = list(required)
    if default is not None:
        schema["default"] = default
    if rules:
        schema["x-kubernetes-validations"] = [rule.schema() for rule in rules]
    return schema


def _int(description: str, default: int | None = None, minimum: int | None = None,
         maximum: int | None = None) -> Schema:
    schema: Schema = {"type": "integer", "description": description}
    for key, value in (("default", default), ("minimum", minimum), ("maximum", maximum)):
        if value is not None:
            schema[key] = value
    return schema


def _str(description: str, default: str | None = None, enum: tuple[str, ...] = (),
         pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "description": description}
    if default is not None:
        schema["default"] = default
    if enum:
        schema["enum"] = list(enum)
    if pattern:
        schema["pattern"] = pattern
    return schema


def _bool(description: str, default: bool) -> Schema:
    return {"type": "boolean", "description": description, "default": default}


def _quantity(description: str) -> Schema:
    return {"anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True, "description": description}


def _quantity_map(description: str) -> Schema:
    return {"type": "object", "description": description,
            "additionalProperties": _quantity("amount of this resource")}


def _resources(cpu: str, memory: str, memory_limit: str) -> Schema:
    return _obj(
        "container resources, as in a Pod spec",
        {"requests": _quantity_map("guaranteed amounts, e.g. cpu: 250m, memory: 256Mi"),
         "limits": _quantity_map("hard caps; a memory limit protects the node")},
        default={"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}})


def _secret_ref(description: str, default_key: str) -> Schema:
    return _obj(description, {
        "name": _str("name of the Secret in the same namespace", pattern=DNS_LABEL_PATTERN),
        "key": _str("key inside the Secret", default=default_key),
    }, required=("name",))


def _open_object(description: str) -> Schema:
    """A Kubernetes type taken as it is (affinity, a toleration, an EnvVar): the API server
    checks it when the pod is created, so the CRD does not repeat its schema."""
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}


def _string_map(description: str) -> Schema:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string"}}


def scheduling() -> Schema:
    """Where a component's pods run and what they carry, as in a Pod spec."""
    return {
        "nodeSelector": _string_map("node labels the pods require"),
        "tolerations": {"type": "array", "description": "taints the pods tolerate",
                        "items": _open_object("a Pod toleration")},
        "affinity": _open_object("Pod affinity and anti-affinity, as in a Pod spec"),
        "priorityClassName": _str("PriorityClass of the pods"),
        "podLabels": _string_map("extra labels on the pods (the operator's own labels win)"),
        "podAnnotations": _string_map("extra annotations on the pods"),
        "extraEnv": {"type": "array", "description": "extra environment variables (EnvVar) of every container",
                     "items": _open_object("an EnvVar, e.g. {name: HTTPS_PROXY, value: ...}")},
    }


def _component(description: str, replicas: int, resources: Schema, extra: Schema | None = None,
               rules: tuple[Rule, ...] = ()) -> Schema:
    properties: Schema = {"replicas": _int("number of pods", default=replicas, minimum=1),
                          "resources": resources, **scheduling()}
    return _obj(description, properties | (extra or {}), default={}, rules=rules)


def spec_schema() -> Schema:
    """The `spec` of a BuildBuddyAPI: every field has a default except the references."""
    return _obj("desired state of one bbapi installation", {
        "image": _str("container image for every bbapi process; defaults to the operator's own image"),
        "imagePullPolicy": _str("when kubelet pulls the image", default="IfNotPresent",
                                enum=("Always", "IfNotPresent", "Never")),
        "imagePullSecrets": {"type": "array", "description": "Secrets for pulling from a private registry",
                             "items": _obj("a Secret reference", {"name": _str("Secret name")},
                                           required=("name",))},
        "gateway": _component(
            "the public edge: HTTP API, gRPC API, BES and REAPI (in embedded mode its resources and "
            "scheduling apply to the single pod)", 2, _resources("250m", "256Mi", "1Gi"),
            {"drainSeconds": _int("on a rollout or scale-down, how long a stopping gateway lets running builds' "
                                  "streams and transfers finish before cancelling them", default=300, minimum=0,
                                  maximum=3600),
             "autoscaling": _obj("CPU-based HorizontalPodAutoscaler; replicas is its floor", {
                "enabled": _bool("scale the gateway with an HPA", True),
                "maxReplicas": _int("HPA ceiling", default=10, minimum=1),
                "targetCPUUtilizationPercentage": _int("average CPU use the HPA aims for", default=70,
                                                       minimum=1, maximum=100),
            }, default={})},
            rules=(AUTOSCALING_ABOVE_FLOOR,)),
        "metadata": _component("build metadata and API keys over PostgreSQL", 2,
                               _resources("100m", "256Mi", "1Gi")),
        "logs": _component("build logs over PostgreSQL", 2, _resources("100m", "256Mi", "1Gi")),
        "cas": _obj("content-addressed storage, one shard per pod with its own volume", {
            "shards": _int("number of CAS pods; changing it migrates data before dropping a shard",
                           default=3, minimum=1, maximum=256),
            "replication": _int("copies of every blob, on distinct shards", default=2, minimum=1, maximum=5),
            "volumeSize": _str("size of each shard's volume; the cache uses about 80% of it",
                               default="50Gi", pattern=QUANTITY_PATTERN),
            "storageClassName": _str("StorageClass of the shard volumes; empty uses the cluster default"),
            "resources": _resources("250m", "512Mi", "2Gi"),
            "zoneSpread": _str("spread shards over zones strictly (DoNotSchedule) or as far as possible "
                               "(ScheduleAnyway); shards never share a node while another node can take them",
                               default="ScheduleAnyway", enum=("ScheduleAnyway", "DoNotSchedule")),
            **scheduling(),
        }, default={}, rules=(REPLICATION_WITHIN_SHARDS, STORAGE_CLASS_FIXED)),
        "database": _obj("where metadata and logs live", {
            "embedded": _bool("single-pod trial: one all-in-one pod with SQLite on its volume", False),
            "postgres": _obj("PostgreSQL for the distributed mode", {
                "secretRef": _secret_ref("Secret holding a postgresql:// URL", "url"),
            }, required=("secretRef",)),
        }, default={}, rules=(DATABASE_CHOSEN, DATABASE_EXCLUSIVE, EMBEDDED_FIXED)),
        "apiKeySecret": _secret_ref(
            "Secret with the bootstrap admin API key; if unset the operator creates <name>-api-key",
            "api-key"),
        "tls": _obj("TLS on the gateway's public gRPC and HTTP ports (plaintext when unset)", {
            "secretName": _str("a kubernetes.io/tls Secret (tls.crt, tls.key) in the same namespace, e.g. one "
                               "cert-manager issues; a renewed certificate is served without a restart",
                               pattern=DNS_SUBDOMAIN_PATTERN),
        }, required=("secretName",)),
        "service": _obj("the gateway Service", {
            "type": _str("Service type", default="ClusterIP", enum=("ClusterIP", "NodePort", "LoadBalancer")),
            "grpcPort": _int("port for REAPI, BES and the gRPC API", default=1985, minimum=1, maximum=65535),
            "httpPort": _int("port for /api/v1 and health (metrics are on the pods' admin port, 9090)",
                             default=8080, minimum=1, maximum=65535),
            "annotations": {"type": "object", "description": "annotations of the gateway Service",
                            "additionalProperties": {"type": "string"}},
        }, default={}, rules=(DISTINCT_PORTS,)),
        "metrics": _obj("Prometheus scraping", {
            "enabled": _bool("add prometheus.io/scrape annotations to every pod", True),
        }, default={}),
        "retention": _obj("how long builds and audit entries are kept; `bbapi retention set` overrides "
                          "the windows per tenant", {
            "invocations": _str("how long an invocation, all its rows and its log are kept after its last "
                                "activity, e.g. 30d or 12h; 0 keeps them forever", default="30d",
                                pattern=DURATION_PATTERN),
            "audit": _str("how long audit log entries are kept; 0 keeps them forever", default="365d",
                          pattern=DURATION_PATTERN),
            "janitor": _obj("the background task of the metadata and logs pods that deletes expired data", {
                "enabled": _bool("delete expired data", True),
                "intervalSeconds": _int("time between sweeps", default=600, minimum=1),
                "batch": _int("rows deleted per transaction (a log chunk counts as 64)", default=500, minimum=1),
                "dryRun": _bool("only log what would be deleted", False),
            }, default={}),
        }, default={}),
        "tracing": _obj("OpenTelemetry traces", {
            "exporter": _str("where spans go", default="none", enum=("none", "console", "otlp")),
            "endpoint": _str("OTLP/gRPC collector address, host:port", default=""),
        }, default={}, rules=(OTLP_ENDPOINT,)),
    }, default={})


def status_schema() -> Schema:
    """What the operator reports; declared so the structural schema keeps it."""
    return _obj("observed state, written by the operator", {
        "observedGeneration": _int("the metadata.generation this status describes"),
        "conditions": {
            "type": "array", "description": "Ready, Progressing and Degraded",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": _obj("a standard condition", {
                "type": _str("condition type"),
                "status": _str("True, False or Unknown", enum=("True", "False", "Unknown")),
                "reason": _str("machine-readable CamelCase reason"),
                "message": _str("human-readable detail"),
                "lastTransitionTime": {"type": "string", "format": "date-time",
                                       "description": "when status last changed"},
                "observedGeneration": _int("generation the condition was computed for"),
            }, required=("type", "status")),
        },
        "components": {
            "type": "array", "description": "pod counts per component",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": _obj("one component", {"name": _str("gateway, metadata, logs, cas or server"),
                                             "desired": _int("pods wanted"), "ready": _int("pods ready"),
                                             "updated": _int("pods on the latest spec")},
                          required=("name",)),
        },
        "cas": _obj("CAS membership", {
            "shards": _int("shards in the membership the gateways use"),
            "desiredShards": _int("shards asked for in spec"),
            "phase": _str("Stable, WaitingForShards, Migrating or WaitingForMigration"),
            "copied": _int("blobs copied by the migration in flight"),
            "scanned": _int("blobs scanned by the migration in flight"),
        }),
        "apiKeySecret": _obj("where the bootstrap API key is", {"name": _str("Secret"), "key": _str("key")}),
        "endpoints": _obj("in-cluster addresses of the gateway", {
            "grpc": _str("grpc:// (grpcs:// with TLS) address for Bazel's --remote_cache and --bes_backend"),
            "http": _str("http:// (https:// with TLS) address of the REST API"),
        }),
    })


def _printer_columns() -> list[Schema]:
    def column(name: str, path: str, kind: str = "string", priority: int = 0) -> Schema:
        return {"name": name, "type": kind, "jsonPath": path, "priority": priority}
    return [
        column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        column("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
        column("Shards", ".status.cas.shards", "integer"),
        column("Phase", ".status.cas.phase", priority=1),
        column("Endpoint", ".status.endpoints.grpc", priority=1),
        column("Age", ".metadata.creationTimestamp", "date"),
    ]


def crd() -> Schema:
    """The CustomResourceDefinition manifest."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "bbapi", "app.kubernetes.io/part-of": "bbapi"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL, "singular": SINGULAR,
                      "shortNames": ["bbapi"], "categories": ["bbapi"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": _printer_columns(),
                "schema": {"openAPIV3Schema": _obj(
                    "A self-hosted BuildBuddy API, Build Event Service and remote cache",
                    {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                     "metadata": {"type": "object"}, "spec": spec_schema(), "status": status_schema()})
                    | {"x-kubernetes-validations": [NAME_RULE]}},
            }],
        },
    }


def render() -> str:
    """The CRD as the YAML file the chart ships."""
    header = "# Generated by `python -m bbapi_operator.crd`; edit operator/bbapi_operator/crd.py instead.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=1000)


if __name__ == "__main__":
    sys.stdout.write(render())
