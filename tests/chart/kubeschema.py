"""Offline validation of manifests: built-in kinds against the Kubernetes OpenAPI schemas that
kubernetes-validate bundles (strict: unknown fields fail), our own kind against the CRD, and
prometheus-operator's kinds against cloudcoil's models of its CRDs (strict too, see
`validate_monitoring`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from bbapi_operator import crd
from cloudcoil.models.prometheus_operator import v1 as monitoring
from kubernetes_validate import utils

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "bbapi"
CRD_FILE = CHART / "crds" / f"{crd.PLURAL}.{crd.GROUP}.yaml"
# Gateway API kinds are CRDs of their own, not in the bundled schemas: tests check them by content.
GATEWAY_API = {"GRPCRoute", "HTTPRoute"}
MONITORING = {"PodMonitor": monitoring.PodMonitor, "PrometheusRule": monitoring.PrometheusRule}
VERSIONS = sorted(set(utils.all_versions()), key=lambda v: tuple(int(part) for part in v.split(".")))
OLDEST, NEWEST = VERSIONS[0], VERSIONS[-1]


@functools.cache
def crd_schema() -> dict[str, Any]:
    """The openAPIV3Schema the chart installs."""
    document = yaml.safe_load(CRD_FILE.read_text())
    schema: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def validate_instance(obj: dict[str, Any]) -> None:
    """A BuildBuddyAPI against the CRD's OpenAPI schema. Its CEL rules (x-kubernetes-validations)
    are not evaluated here; `bbapi_operator.spec.parse` checks each of `crd.RULES`."""
    jsonschema.validate(obj, crd_schema())


def validate_monitoring(obj: dict[str, Any]) -> None:
    """A PodMonitor or PrometheusRule against its model (pydantic, generated from the CRD's schema:
    types, enums, required fields). The model drops fields it does not know, so the round trip must
    give the document back unchanged: an unknown or misplaced field fails, as in strict mode."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1", obj["apiVersion"]
    model = MONITORING[obj["kind"]].model_validate(obj)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj


def validate_strict(documents: Iterable[dict[str, Any]]) -> int:
    """Validate every document for the oldest and newest bundled Kubernetes; returns the count."""
    count = 0
    for document in documents:
        if document["kind"] == crd.KIND:
            validate_instance(document)
        elif document["kind"] in MONITORING:
            validate_monitoring(document)
        elif document["kind"] in GATEWAY_API:
            assert document["apiVersion"] == "gateway.networking.k8s.io/v1", document
        else:
            for version in (OLDEST, NEWEST):
                kubernetes_validate.validate(document, version, strict=True)
        count += 1
    return count
