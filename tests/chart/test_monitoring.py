"""The chart's observability pack: each part is off by default, renders and validates on its own,
ships the very files tests/observability checks, and scrapes the ports the operator's pods serve
/metrics on."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import yaml
from bbapi_operator import desired, membership
from bbapi_operator.meta import Owner
from bbapi_operator.spec import parse

from tests.chart.helm import Rendered, render
from tests.chart.kubeschema import CHART, validate_strict

PARTS = ("dashboard", "rules", "podMonitor")
KINDS = {"dashboard": "ConfigMap", "rules": "PrometheusRule", "podMonitor": "PodMonitor"}
OWNER = Owner(name="demo", namespace="builds", uid="uid-1")
WORKLOADS = ("Deployment", "StatefulSet")


def monitoring(*parts: str, **extra: Any) -> dict[str, Any]:
    return {"monitoring": {part: {"enabled": part in parts, **extra.get(part, {})} for part in PARTS}}


def pack(rendered: Rendered) -> list[str]:
    return sorted(d["kind"] for d in rendered.documents if d["kind"] in KINDS.values())


@pytest.mark.parametrize("parts", [c for n in range(len(PARTS) + 1) for c in itertools.combinations(PARTS, n)],
                         ids=lambda parts: "+".join(parts) or "none")
def test_each_part_renders_alone_and_validates(parts: tuple[str, ...]) -> None:
    rendered = render(monitoring(*parts) | {"instance": {"enabled": True}}, crds=True)
    assert pack(rendered) == sorted(KINDS[part] for part in parts)
    assert validate_strict(rendered.documents) == len(rendered.documents)


def test_off_by_default() -> None:
    assert pack(render({"instance": {"enabled": True}})) == []


def test_the_dashboard_is_the_file_labelled_for_the_sidecar() -> None:
    rendered = render(monitoring("dashboard", dashboard={"label": "grafana.io/dashboard", "labelValue": "bbapi",
                                                         "namespace": "grafana"}))
    config_map = rendered.one("ConfigMap")
    assert config_map["metadata"]["labels"]["grafana.io/dashboard"] == "bbapi"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
    assert config_map["metadata"]["namespace"] == "grafana"
    shipped = (CHART / "files" / "dashboard.json").read_text()
    assert json.loads(config_map["data"]["bbapi.json"]) == json.loads(shipped)
    default = render(monitoring("dashboard")).one("ConfigMap")["metadata"]
    assert default["labels"]["grafana_dashboard"] == "1" and default["namespace"] == "builds"


def test_the_rules_are_the_file() -> None:
    rule = render(monitoring("rules", rules={"labels": {"release": "monitoring"}})).one("PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["metadata"]["labels"]["release"] == "monitoring"


def test_bad_monitoring_values_are_rejected() -> None:
    import helm_python

    for bad in ({"dashboard": {"label": "not a label"}}, {"podMonitor": {"interval": "30 seconds"}},
                {"rules": {"severity": "page"}}):
        with pytest.raises(helm_python.HelmValuesError):
            render({"monitoring": bad})


def metrics_port(container: dict[str, Any]) -> tuple[str, int]:
    """The named container port a bbapi process serves /metrics on, from its own settings: the
    admin port where it has one (gateway, all-in-one), else its metrics port."""
    env = {e["name"]: e.get("value") for e in container["env"]}
    number = int(env.get("BBAPI_ADMIN_PORT") or env["BBAPI_METRICS_PORT"])
    (name,) = [p["name"] for p in container["ports"] if p["containerPort"] == number]
    return name, number


@pytest.mark.parametrize("raw", [{"database": {"embedded": True}},
                                 {"database": {"postgres": {"secretRef": {"name": "pg"}}}}],
                         ids=["embedded", "distributed"])
def test_the_pod_monitor_scrapes_every_pod_the_operator_runs(raw: dict[str, Any]) -> None:
    monitor = render(monitoring("podMonitor")).one("PodMonitor")["spec"]
    assert monitor["namespaceSelector"] == {"matchNames": ["builds"]}
    scraped = {endpoint["port"] for endpoint in monitor["podMetricsEndpoints"]}
    assert all(endpoint["path"] == "/metrics" for endpoint in monitor["podMetricsEndpoints"])
    spec = parse(raw, default_image="bbapi:1")
    plan = None if spec.embedded else membership.plan(OWNER, 3, spec.cas.replication, None, 3)
    workloads = [c for c in desired.children(OWNER, spec, plan, None if spec.embedded else 2**30)
                 if c["kind"] in WORKLOADS]
    assert len(workloads) == (1 if spec.embedded else 4)  # server; or gateway, metadata, logs, cas
    for workload in workloads:
        pod = workload["spec"]["template"]
        assert monitor["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (container,) = pod["spec"]["containers"]
        name, _number = metrics_port(container)
        assert name in scraped, (workload["metadata"]["name"], name)
        # exactly one endpoint applies to each pod: it names no other scraped port
        assert [p["name"] for p in container["ports"] if p["name"] in scraped] == [name]


def test_the_pod_monitor_watches_where_asked() -> None:
    watched = render(monitoring("podMonitor") | {"operator": {"watchNamespace": "ci"}}).one("PodMonitor")
    assert watched["spec"]["namespaceSelector"] == {"matchNames": ["ci"]}
    listed = render(monitoring("podMonitor", podMonitor={"namespaces": ["a", "b"]})).one("PodMonitor")
    assert listed["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}
