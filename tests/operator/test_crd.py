"""The CRD: generated from code, shipped by the chart, valid, and the examples conform to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from bbapi_operator import crd
from bbapi_operator.spec import parse

from tests.chart.kubeschema import CRD_FILE, REPO, validate_instance, validate_strict

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def _walk(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield schema
    for child in schema.get("properties", {}).values():
        yield from _walk(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _walk(schema[key])


def test_chart_ships_the_generated_crd() -> None:
    assert CRD_FILE.read_text() == crd.render(), "regenerate: python -m bbapi_operator.crd > " + str(CRD_FILE)


def test_crd_is_a_valid_kubernetes_object() -> None:
    assert validate_strict([crd.crd()]) == 1


def test_schema_is_structural_and_defaults_conform() -> None:
    """Every node has a type (or is int-or-string) and every default validates against its node."""
    root = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in _walk(root):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), node
        if "default" in node:
            jsonschema.validate(node["default"], node)


def test_cel_rules_are_the_shared_ones_where_they_belong() -> None:
    """Every x-kubernetes-validations entry is one of `crd.RULES` (which `spec.parse` checks) or
    `crd.TRANSITIONS` (which guards.py enforces), on the field the rule names, plus the name rule
    at the root (`spec.check_name`)."""
    root = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    found = [(field, entry) for field, node in root["properties"]["spec"]["properties"].items()
             for entry in node.get("x-kubernetes-validations", [])]
    assert root["x-kubernetes-validations"] == [crd.NAME_RULE]
    assert sum(len(node.get("x-kubernetes-validations", [])) for node in _walk(root)) == len(found) + 1
    expected = [(rule.field, rule.schema()) for rule in (*crd.RULES, *crd.TRANSITIONS)]
    assert sorted(found, key=str) == sorted(expected, key=str)
    assert all("oldSelf" in rule.expression for rule in crd.TRANSITIONS)
    assert not any("oldSelf" in rule.expression for rule in crd.RULES)


def test_printer_columns_point_at_declared_status_fields() -> None:
    status = crd.status_schema()["properties"]
    for column in crd.crd()["spec"]["versions"][0]["additionalPrinterColumns"]:
        path = column["jsonPath"].split(".")
        if path[1] == "status":
            assert path[2].split("[")[0] in status, column


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_crd(example: Path) -> None:
    (document,) = yaml.safe_load_all(example.read_text())
    assert document["apiVersion"] == crd.API_VERSION and document["kind"] == crd.KIND
    validate_instance(document)
    parse(document["spec"], default_image="img")  # and its CEL rules, which jsonschema skips


def test_examples_cover_both_modes() -> None:
    modes = {yaml.safe_load(p.read_text())["spec"]["database"].get("embedded", False) for p in EXAMPLES}
    assert modes == {True, False}


@pytest.mark.parametrize("spec", [
    {"cas": {"shards": 0}},
    {"cas": {"volumeSize": "lots"}},
    {"service": {"type": "Ingress"}},
    {"tracing": {"exporter": "jaeger"}},
    {"gateway": {"replicas": "3"}},
    {"apiKeySecret": {"key": "api-key"}},
])
def test_schema_rejects_bad_specs(spec: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_instance({"apiVersion": crd.API_VERSION, "kind": crd.KIND, "metadata": {"name": "x"},
                           "spec": spec})


def test_render_is_plain_yaml() -> None:
    assert "&id" not in crd.render()  # no YAML anchors: kubectl and helm both read it
    assert yaml.safe_load(crd.render()) == crd.crd()
