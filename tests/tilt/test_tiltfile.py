"""The Tiltfile, evaluated with stand-in builtins in both operator modes."""

from __future__ import annotations

import importlib.util
import shlex
from typing import Any

import pytest
from bbapi_operator import crd

from tests.chart.kubeschema import REPO, validate_instance
from tests.tilt.dockerfile import stages, workdir_copies
from tests.tilt.tilt import TiltRun, evaluate

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
MODES = {"in-cluster": {}, "operator-local": {"operator-local": True}}


@pytest.fixture(params=list(MODES.values()), ids=list(MODES), scope="module")
def run(request: pytest.FixtureRequest) -> TiltRun:
    return evaluate(request.param)


def _jsonpath(obj: dict[str, Any], path: str) -> Any:
    """The `{.a.b}` JSONPaths k8s_kind takes."""
    for part in path.strip("{}").strip(".").split("."):
        obj = obj[part]
    return obj


def _repository(image: str) -> str:
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


def images_used(run: TiltRun) -> set[str]:
    used = set()
    for document in run.documents:
        if document["kind"] in run.kinds:
            used.add(_jsonpath(document, run.kinds[document["kind"]]))
        elif document["kind"] in WORKLOAD_KINDS:
            pod = document["spec"]["template"]["spec"]
            used |= {c["image"] for c in pod["containers"] + pod.get("initContainers", [])}
    return used


def workloads(run: TiltRun) -> set[str]:
    return {d["metadata"]["name"] for d in run.documents if d["kind"] in (*WORKLOAD_KINDS, *run.kinds)}


def test_every_image_used_is_built_and_every_build_is_used(run: TiltRun) -> None:
    used = {_repository(image) for image in images_used(run)}
    assert used == set(run.builds)


def test_every_named_resource_exists(run: TiltRun) -> None:
    names = workloads(run)
    for resource in run.resources:
        if resource["workload"]:
            assert resource["workload"] in names, resource
        for selector in resource["objects"]:
            name, kind, *namespace = selector.split(":")
            assert any(d["metadata"]["name"] == name and d["kind"].lower() == kind
                       and namespace in ([], [d["metadata"].get("namespace")]) for d in run.documents), selector
    known = names | {r["new_name"] for r in run.resources if r["new_name"]} | set(run.local_resources)
    for dependent in [*run.resources, *run.local_resources.values()]:
        assert set(dependent["resource_deps"]) <= known, dependent


def test_live_update_syncs_sources_where_the_image_has_them(run: TiltRun) -> None:
    (build,) = run.builds.values()
    dockerfile = stages(REPO / build["dockerfile"])
    assert build["target"] in {stage.name for stage in dockerfile}
    placed = workdir_copies(dockerfile, build["target"])
    steps = build["live_update"]
    kinds = [step[0] for step in steps]
    assert kinds.index("sync") > max((i for i, k in enumerate(kinds) if k == "fall_back_on"), default=-1)
    assert "run" not in kinds or kinds.index("run") > max(i for i, k in enumerate(kinds) if k == "sync")
    synced = {step[1]: step[2] for step in steps if step[0] == "sync"}
    assert synced == {source: placed[source] for source in synced}  # lands where the editable install reads
    assert {"services", "operator"} <= set(synced)
    for step in steps:
        if step[0] == "fall_back_on":
            assert all((REPO / path).exists() for path in step[1])
    assert all((REPO / path).exists() for path in build["only"])
    assert build["entrypoint"] == next(s for s in dockerfile if s.name == build["target"]).exec_form("ENTRYPOINT")


def test_sample_is_a_valid_buildbuddyapi_in_the_dev_namespace(run: TiltRun) -> None:
    (sample,) = [d for d in run.documents if d["kind"] == crd.KIND]
    validate_instance(sample)
    assert sample["metadata"]["namespace"] in run.namespaces
    assert sample["spec"]["image"] in run.builds
    forwarded = next(r for r in run.resources if r["workload"] == sample["metadata"]["name"])
    assert forwarded["port_forwards"] == ["1985:1985", "8080:8080"]


def test_only_local_clusters(run: TiltRun) -> None:
    assert run.contexts and not any("prod" in context or "gke_" in context for context in run.contexts)


def test_operator_modes() -> None:
    in_cluster, local = evaluate(MODES["in-cluster"]), evaluate(MODES["operator-local"])
    assert "bbapi-operator" in workloads(in_cluster) and "operator" not in in_cluster.local_resources
    assert "bbapi-operator" not in workloads(local)
    operator = local.local_resources["operator"]
    argv = shlex.split(operator["serve_cmd"])
    assert argv[:2] == ["kopf", "run"] and "--standalone" in argv
    module = argv[argv.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None
    assert all((REPO / path).exists() for path in operator["deps"])
    # kopf run takes the namespace as an argument; BBAPI_WATCH_NAMESPACE only reaches `bbapi operator`
    assert f"--namespace={local.namespaces[0]}" in argv
    assert "BBAPI_WATCH_NAMESPACE" not in operator["serve_env"]


def test_namespace_flag_moves_everything() -> None:
    run = evaluate({"namespace": "mine"})
    assert run.namespaces == ["mine"]
    cluster_scoped = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}  # e.g. reading nodes
    namespaced = [d for d in run.documents if d["kind"] not in cluster_scoped]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"mine"}
    (deployment,) = [d for d in run.documents if d["kind"] == "Deployment"]
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BBAPI_WATCH_NAMESPACE"] == "mine"
