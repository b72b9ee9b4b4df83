"""Defaulting and the typed view of a BuildBuddyAPI spec."""

from __future__ import annotations

from typing import Any

import pytest
from bbapi_operator import crd
from bbapi_operator.defaults import apply_defaults
from bbapi_operator.spec import CHECKS, InvalidSpec, SecretRef, check_name, parse

POSTGRES: dict[str, Any] = {"database": {"postgres": {"secretRef": {"name": "pg"}}}}


def test_empty_object_gets_every_default() -> None:
    spec = parse(POSTGRES, default_image="img:1")
    assert spec.image == "img:1"
    assert spec.image_pull_policy == "IfNotPresent"
    assert (spec.gateway.replicas, spec.metadata.replicas, spec.logs.replicas) == (2, 2, 2)
    assert spec.gateway.autoscaling.enabled and spec.gateway.autoscaling.max_replicas == 10
    assert (spec.cas.shards, spec.cas.replication, spec.cas.volume_size) == (3, 2, "50Gi")
    assert spec.cas.storage_class is None
    assert spec.postgres == SecretRef("pg", "url")
    assert spec.api_key_secret is None
    assert (spec.service.type, spec.service.grpc_port, spec.service.http_port) == ("ClusterIP", 1985, 8080)
    assert spec.metrics and spec.tracing_exporter == "none"
    assert spec.gateway.resources == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def test_given_values_win_over_defaults() -> None:
    spec = parse(POSTGRES | {"image": "mine:2", "cas": {"shards": 5, "storageClassName": "ssd"},
                             "apiKeySecret": {"name": "keys"}, "gateway": {"resources": {"limits": {"cpu": 2}}}},
                 default_image="img:1")
    assert spec.image == "mine:2"
    assert (spec.cas.shards, spec.cas.replication, spec.cas.storage_class) == (5, 2, "ssd")
    assert spec.api_key_secret == SecretRef("keys", "api-key")
    assert spec.gateway.resources == {"limits": {"cpu": 2}}  # a given object replaces the default whole


VIOLATIONS: dict[crd.Rule, dict[str, Any]] = {
    crd.AUTOSCALING_ABOVE_FLOOR: POSTGRES | {"gateway": {"replicas": 4, "autoscaling": {"maxReplicas": 3}}},
    crd.REPLICATION_WITHIN_SHARDS: POSTGRES | {"cas": {"shards": 1, "replication": 2}},
    crd.DATABASE_CHOSEN: {},
    crd.DATABASE_EXCLUSIVE: POSTGRES | {"database": {"embedded": True, "postgres": {"secretRef": {"name": "pg"}}}},
    crd.DISTINCT_PORTS: POSTGRES | {"service": {"grpcPort": 8080}},
    crd.OTLP_ENDPOINT: POSTGRES | {"tracing": {"exporter": "otlp"}},
}


def test_every_cel_rule_is_checked() -> None:
    assert set(CHECKS) == set(crd.RULES) == set(VIOLATIONS)


@pytest.mark.parametrize("rule", crd.RULES, ids=lambda rule: rule.field)
def test_rules_the_api_server_may_not_enforce(rule: crd.Rule) -> None:
    with pytest.raises(InvalidSpec) as refused:
        parse(VIOLATIONS[rule], default_image="img")
    assert str(refused.value) == f"spec.{rule.field}: {rule.message}"


@pytest.mark.parametrize("raw", [
    POSTGRES | {"gateway": {"replicas": 4, "autoscaling": {"maxReplicas": 4}}},
    POSTGRES | {"gateway": {"replicas": 4, "autoscaling": {"enabled": False, "maxReplicas": 3}}},
    POSTGRES | {"cas": {"shards": 2, "replication": 2}},
    POSTGRES | {"service": {"grpcPort": 8081}},
    POSTGRES | {"tracing": {"exporter": "otlp", "endpoint": "collector:4317"}},
], ids=["autoscaling-at-floor", "autoscaling-off", "replication-equal", "ports-differ", "otlp-endpoint"])
def test_specs_just_inside_the_rules_are_accepted(raw: dict[str, Any]) -> None:
    parse(raw, default_image="img")


def test_name_leaves_room_for_every_child_name() -> None:
    longest = "n" * crd.MAX_NAME_LENGTH
    check_name(longest)
    assert len(f"{longest}-server") == len(f"{longest}-cas") + 3 == 52  # the StatefulSet name limit
    with pytest.raises(InvalidSpec, match="at most 45 characters"):
        check_name(longest + "x")


def test_embedded_needs_no_postgres() -> None:
    spec = parse({"database": {"embedded": True}}, default_image="img")
    assert spec.embedded and spec.postgres is None


def test_embedded_mode_keeps_the_shard_rule_like_the_api_server() -> None:
    """The CEL rule on `cas` holds in every mode, so the operator refuses what kubectl would."""
    with pytest.raises(InvalidSpec, match="replication cannot exceed shards"):
        parse({"database": {"embedded": True}, "cas": {"shards": 1, "replication": 3}}, default_image="img")


def test_apply_defaults_recurses_into_defaulted_objects_and_lists() -> None:
    schema = {"type": "object", "properties": {
        "outer": {"type": "object", "default": {}, "properties": {"inner": {"type": "integer", "default": 7}}},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string", "default": "k"}}}},
        "plain": {"type": "string"}}}
    assert apply_defaults(schema, {"items": [{}, {"key": "mine"}]}) == {
        "outer": {"inner": 7}, "items": [{"key": "k"}, {"key": "mine"}]}
