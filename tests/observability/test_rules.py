"""The chart's alert rules pass `promtool check rules`, and `promtool test rules` shows each alert
firing on series that should fire it and staying quiet on series that should not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import render
from tests.observability.prometheus import MISSING, PROMTOOL
from tests.observability.promql import ALERTS, alert_queries

UNIT_TESTS = Path(__file__).parent / "alerts_test.yaml"

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason=MISSING)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


def test_the_rules_file_and_the_rendered_prometheus_rule_check(tmp_path: Path) -> None:
    rule = render({"monitoring": {"rules": {"enabled": True}}}).one("PrometheusRule")
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    checked = promtool("check", "rules", str(ALERTS), str(rendered))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(f"SUCCESS: {len(alert_queries())} rules found") == 2


def test_every_alert_fires_and_holds_as_its_unit_tests_expect() -> None:
    tested = promtool("test", "rules", str(UNIT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in cases for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == set(alert_queries())
