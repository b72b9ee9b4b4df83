"""Every manifest the operator builds passes strict Kubernetes schema validation, for the oldest
and newest Kubernetes versions kubernetes-validate bundles."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from bbapi_operator import apikey, crd, desired, membership
from bbapi_operator.meta import Owner
from bbapi_operator.spec import parse

from services.blobstore.cluster import resize
from tests.chart.kubeschema import REPO, validate_instance, validate_strict
from tests.operator.test_builders import EVERY_KNOB, KNOBS

OWNER = Owner(name="demo", namespace="builds", uid="uid-1")
POSTGRES: dict[str, Any] = {"database": {"postgres": {"secretRef": {"name": "pg"}}}}
SPECS = {
    "defaults": POSTGRES,
    "fixed-replicas-no-metrics": POSTGRES | {"gateway": {"autoscaling": {"enabled": False}},
                                             "metrics": {"enabled": False}, "service": {"type": "NodePort"}},
    "every-scheduling-knob": EVERY_KNOB | {"cas": KNOBS | {"zoneSpread": "DoNotSchedule"}},
    "embedded-with-knobs-and-tls": {"database": {"embedded": True}, "gateway": KNOBS, "tls": {"secretName": "t"}},
    "tls": POSTGRES | {"tls": {"secretName": "bbapi-tls"}},
    **{path.stem: yaml.safe_load(path.read_text())["spec"] for path in sorted((REPO / "examples").glob("*.yaml"))},
}


@pytest.mark.parametrize("raw", SPECS.values(), ids=SPECS.keys())
def test_children_validate_strictly(raw: dict[str, Any]) -> None:
    validate_instance({"apiVersion": crd.API_VERSION, "kind": crd.KIND, "metadata": {"name": "demo"}, "spec": raw})
    spec = parse(raw, default_image="bbapi:1")
    moving = resize.document(spec.cas.replication, membership.members(OWNER, 4), membership.members(OWNER, 3))
    plan = None if spec.embedded else membership.plan(OWNER, 3, spec.cas.replication, moving, 4)
    children = desired.children(OWNER, spec, plan, None if spec.embedded else 40 * 2**30)
    assert validate_strict([*children, apikey.secret(OWNER, apikey.generate_key())]) == len(children) + 1
