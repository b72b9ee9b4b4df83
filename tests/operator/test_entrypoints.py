"""The two ways the operator starts: `bbapi operator` (main.run) and `kopf run -m ...handlers`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import kopf
import pytest
from bbapi_operator import crd, main
from bbapi_operator.settings import OperatorSettings

from tests.operator.cluster import Cluster, eventually


def test_run_starts_one_standalone_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, Any]] = []

    async def operator(**kwargs: Any) -> None:
        started.append(kwargs)

    registries: list[kopf.OperatorRegistry] = []

    def fresh_registry() -> kopf.OperatorRegistry:
        registries.append(kopf.OperatorRegistry())
        return registries[-1]

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(kopf, "get_default_registry", fresh_registry)
    monkeypatch.setenv("BBAPI_WATCH_NAMESPACE", "from-env")
    monkeypatch.setenv("BBAPI_HEALTH_PORT", "9999")
    main.run()
    main.run(OperatorSettings(watch_namespace="builds"))
    main.run(OperatorSettings(watch_namespace=""))
    assert [(s["clusterwide"], s["namespaces"]) for s in started] == [
        (False, ["from-env"]), (False, ["builds"]), (True, [])]
    assert all(s["standalone"] and s["registry"] is r for s, r in zip(started, registries, strict=True))
    assert started[0]["liveness_endpoint"] == "http://0.0.0.0:9999/healthz"
    assert not registries[0]._changing.get_all_handlers()  # no kopf change tracking, no delete handler
    watching = list(registries[0]._watching.get_all_handlers())
    assert [h.id for h in watching] == ["reconcile"] + ["child-changed"] * 6
    assert watching[0].selector is not None and watching[0].selector.any_name == crd.PLURAL
    selectors = [h.selector for h in watching[1:]]
    assert {(s.group, s.version, s.any_name) for s in selectors if s is not None} == {
        ("apps", "v1", "deployments"), ("apps", "v1", "statefulsets"), ("", "v1", "services"),
        ("", "v1", "configmaps"), ("policy", "v1", "poddisruptionbudgets"),
        ("autoscaling", "v2", "horizontalpodautoscalers")}
    assert not registries[0]._spawning.get_all_handlers()  # no timers or daemons: no finalizer


async def test_kopf_run_module(cluster: Cluster, tmp_path: Path) -> None:
    """Tilt's local mode: the kopf CLI with the handlers module, in its own process."""
    log = tmp_path / "operator.log"
    env = os.environ | {"BBAPI_POST_EVENTS": "false", "BBAPI_DEFAULT_IMAGE": "bbapi:local"}
    with log.open("w") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", "builds",
            "-m", "bbapi_operator.handlers", env=env, stdout=output, stderr=asyncio.subprocess.STDOUT)
    try:
        await cluster.create("demo", {"database": {"embedded": True}})
        server = await eventually(lambda: cluster.get("StatefulSet", "demo-server"), within=20,
                                  what=f"the operator process to act; its log: {log}")
        assert server["spec"]["template"]["spec"]["containers"][0]["image"] == "bbapi:local"
        await eventually(lambda: cluster.condition("demo", "Ready"), within=10)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert await asyncio.wait_for(process.wait(), 10) == 0, log.read_text()
        finally:
            if process.returncode is None:
                process.kill()
    assert (cluster.get(crd.KIND, "demo") or {})["status"]["observedGeneration"] == 1
