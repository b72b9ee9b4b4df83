"""The PromQL the chart ships: every dashboard and alert expression, and the metric names in them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.chart.kubeschema import CHART

DASHBOARD = CHART / "files" / "dashboard.json"
ALERTS = CHART / "files" / "alerts.yaml"
# What Grafana substitutes before a query reaches Prometheus; a wide rate window keeps a short
# test's traffic in view.
VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*", "$tenant": ".*"}
SUFFIXES = ("_bucket", "_sum", "_count", "_total")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan"}


def substitute(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown variable in {expr!r}"
    return expr


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries() -> dict[str, str]:
    """Every panel target and template variable, by a readable name, as Prometheus will get it.
    A variable's `label_values(metric, label)` (Grafana's) is asked as `count by (label) (metric)`."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = {f"{panel['title']} [{target['refId']}]": substitute(target["expr"])
               for panel in _panels(dashboard["panels"]) for target in panel.get("targets", [])}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable
            queries[f"${variable['name']}"] = f"count by ({match[2]}) ({substitute(match[1])})"
    return queries


def alert_queries() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: what is left once strings, label matchers,
    ranges, groupings, function calls, keywords and numbers are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    words = re.findall(r"\b[A-Za-z_:][A-Za-z0-9_:]*\b(?!\s*\()", text)
    return {word for word in words if word.lower() not in KEYWORDS}


def family_of(name: str, families: set[str]) -> str | None:
    """The exported family a sample name belongs to (`x_bucket` of histogram `x`, ...)."""
    if name in families:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in families:
            return name.removesuffix(suffix)
    return None
