"""The spec's retention section reaches the processes that expire data, as their own settings."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from bbapi_operator import crd

from services.common.retention import DAY
from services.logs.settings import LogsSettings
from services.metadata.settings import MetadataSettings
from tests.chart.kubeschema import validate_instance
from tests.operator.cluster import Cluster, eventually
from tests.operator.test_lifecycle import DISTRIBUTED

RETENTION = {"invocations": "14d", "audit": "0", "janitor": {"intervalSeconds": 300, "batch": 200, "dryRun": True}}


def env_of(cluster: Cluster, kind: str, name: str) -> dict[str, str]:
    workload = cluster.get(kind, name) or {}
    containers = workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
    return {e["name"]: e["value"] for e in containers[0].get("env", []) if "value" in e}


def settings_of(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], model: type[Any]) -> Any:
    """What the process reads from that environment (pydantic-settings, as the process does)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return model()


async def test_retention_reaches_the_metadata_and_logs_deployments(cluster: Cluster,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async with cluster.operator():
        await cluster.create("demo", {**DISTRIBUTED, "retention": RETENTION})
        await eventually(lambda: env_of(cluster, "Deployment", "demo-logs"), what="the logs Deployment")
        metadata = settings_of(monkeypatch, env_of(cluster, "Deployment", "demo-metadata"), MetadataSettings)
        assert (metadata.invocation_retention, metadata.audit_retention) == (14 * DAY, 0)
        assert (metadata.janitor, metadata.janitor_interval_seconds, metadata.janitor_batch,
                metadata.janitor_dry_run) == (True, 300, 200, True)
        logs_env = env_of(cluster, "Deployment", "demo-logs")
        assert "BBAPI_INVOCATION_RETENTION" not in logs_env, "logs takes the policies from metadata"
        logs = settings_of(monkeypatch, logs_env, LogsSettings)
        assert logs.metadata_target.startswith("dns:///demo-metadata.") and logs.janitor_dry_run
        assert "BBAPI_JANITOR" not in env_of(cluster, "Deployment", "demo-gateway")

        await cluster.patch(crd.KIND, "demo", {"spec": {"retention": {"invocations": "90d",
                                                                      "janitor": {"enabled": False}}}})
        await eventually(lambda: env_of(cluster, "Deployment", "demo-logs")["BBAPI_JANITOR"] == "false",
                         what="the change rolled out")
        changed = env_of(cluster, "Deployment", "demo-metadata")
        assert changed["BBAPI_INVOCATION_RETENTION"] == "90d" and changed["BBAPI_AUDIT_RETENTION"] == "0"
        assert changed["BBAPI_JANITOR"] == "false"


async def test_the_embedded_server_gets_the_defaults(cluster: Cluster) -> None:
    async with cluster.operator():
        await cluster.create("demo", {"database": {"embedded": True}})
        server = await eventually(lambda: env_of(cluster, "StatefulSet", "demo-server"), what="the server")
        assert (server["BBAPI_INVOCATION_RETENTION"], server["BBAPI_AUDIT_RETENTION"]) == ("30d", "365d")
        assert (server["BBAPI_JANITOR"], server["BBAPI_JANITOR_DRY_RUN"]) == ("true", "false")


def instance(retention: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": crd.API_VERSION, "kind": crd.KIND, "metadata": {"name": "x"},
            "spec": {**DISTRIBUTED, "retention": retention}}


@pytest.mark.parametrize("window", ["0", "30d", "12h", "90m", "45s"])
def test_windows_with_units_validate(window: str) -> None:
    validate_instance(instance({"invocations": window, "audit": window}))


@pytest.mark.parametrize("retention", [{"invocations": "30"}, {"audit": "1y"}, {"invocations": "-1d"},
                                       {"invocations": "forever"}, {"janitor": {"batch": 0}},
                                       {"janitor": {"intervalSeconds": 0}}])
def test_the_schema_refuses_bad_retention(retention: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_instance(instance(retention))
