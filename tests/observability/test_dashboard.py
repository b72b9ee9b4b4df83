"""The dashboard file is a well-formed Grafana dashboard: unique ids, panels on the 24-column grid
without overlapping, every query on the data source variable, every variable it uses defined."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.observability.promql import DASHBOARD

GRID_COLUMNS = 24
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        columns, lines = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        mine = {(x, y) for x in columns for y in lines}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_every_query_uses_the_data_source_variable_and_defined_variables() -> None:
    board = dashboard()
    defined = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "namespace", "tenant"} <= defined
    targets = [target for panel in board["panels"] for target in panel.get("targets", [])]
    assert targets
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
    for target in targets:
        assert target["datasource"]["uid"] == "${datasource}"
        used = set(re.findall(r"\$(\w+)", target["expr"]))
        assert used <= defined | GRAFANA_VARIABLES, target["expr"]
        assert 'namespace=~"$namespace"' in target["expr"], target["expr"]  # the namespace picker applies
