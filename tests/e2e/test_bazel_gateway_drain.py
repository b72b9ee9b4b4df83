"""A gateway of `bbapi cluster` is restarted (SIGTERM, drain) in the middle of a real `bazel test` that streams
its build events to it and uses the cluster as its remote cache; the build finishes as if nothing happened.

The workspace gets a genrule that waits at a gate: the test sends the SIGTERM (`bbapi cluster restart`) to the
gateway holding Bazel's event stream while the gate is closed and the stream open, sees the gateway draining,
and only then opens the gate, so the rest of the build (an output through ByteStream, the tests, their
uploads, the final events) happens while that gateway drains.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.blobstore.local.verify import digest_of
from services.cluster import control
from services.common.convert import digest_out
from services.gen.api.v1 import invocation_pb2
from tests.bes.test_bes import expected_log, log_text
from tests.cluster.processes import ClusterProcess, wait_for
from tests.cluster.test_cluster import missing, process, uploaded_outputs
from tests.e2e.test_bazel_bes_outage import invocations, recorded_labels, statuses
from tests.support.bazel import Workspace
from tests.support.bes import read_bep
from tests.support.clients import CacheClient

pytestmark = pytest.mark.bazel
DRAIN_SECONDS = 30  # far longer than the rest of the build takes; the default is 300
STREAM_METHOD = "/google.devtools.build.v1.PublishBuildEvent/PublishBuildToolEventStream"

GATED = """
genrule(
    name = "gate",
    outs = ["gate.txt"],
    cmd = "touch {started}; for i in $$(seq 1 600); do [ -e {release} ] && break; sleep 0.1; done; "
          + "[ -e {release} ] && echo released > $@",
    tags = ["no-sandbox"],  # it looks at files of the test outside the workspace
)

genrule(
    name = "after_gate",
    srcs = [":gate"],
    outs = ["after_gate.bin"],
    cmd = "cat $(location :gate) > $@; for i in $$(seq 1 60000); do echo \\"line $$i after the gate\\"; done >> $@",
)

sh_test(
    name = "gated_test",
    srcs = ["gated_test.sh"],
    data = [":after_gate"],
)
"""


def metrics(admin_url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A gateway's Prometheus samples by sample name (empty if it did not answer)."""
    try:
        text = httpx.get(f"{admin_url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def streams_open(admin_url: str) -> float:
    return sum(value for _, value in metrics(admin_url).get("bbapi_gateway_bes_streams", []))


def streams_served(admin_url: str) -> float:
    """Build event streams this gateway process finished (with any status)."""
    return sum(value for labels, value in metrics(admin_url).get("bbapi_gateway_rpc_seconds_count", [])
               if labels["method"] == STREAM_METHOD)


def draining(admin_url: str) -> bool:
    """Whether the gateway reports itself not ready (its admin port answers until it exits)."""
    try:
        return httpx.get(f"{admin_url}/readyz", timeout=5).status_code == 503
    except httpx.ConnectError:
        raise AssertionError("the gateway exited at once instead of draining") from None


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    running = ClusterProcess(tmp_path / "cluster", [
        "--gateways", "2", "--cas-shards", "2", "--replication", "2", "--drain-seconds", str(DRAIN_SECONDS),
        "--log-level", "warning"]).start()
    yield running
    running.stop(timeout=DRAIN_SECONDS + 30)


def test_bazel_test_is_unaffected_by_a_gateway_restarted_mid_build(cluster: ClusterProcess, workspace: Workspace,
                                                                   tmp_path: Path) -> None:
    try:
        _build_through_a_gateway_restart(cluster, workspace, tmp_path)
    except BaseException:
        print(cluster.child_logs()[-20_000:])
        raise


def _build_through_a_gateway_restart(cluster: ClusterProcess, workspace: Workspace, tmp_path: Path) -> None:
    key = cluster.admin_key
    assert key is not None
    started, release = tmp_path / "gate-started", tmp_path / "gate-release"
    (workspace.root / "gated_test.sh").write_text("#!/bin/sh\nhead -1 after_gate.bin\nexit 0\n")
    (workspace.root / "gated_test.sh").chmod(0o755)
    with (workspace.root / "BUILD").open("a") as build_file:
        build_file.write(GATED.format(started=started, release=release))

    invocation_id, bep, execution_log = str(uuid.uuid4()), tmp_path / "build.bep", tmp_path / "exec.json"
    build: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: build.update(run=workspace.bazel(
        "test", "//...", "--test_tag_filters=-expected-failure", f"--invocation_id={invocation_id}",
        f"--bes_backend=grpc://{key}@{cluster.grpc_target}", f"--remote_cache=grpc://{cluster.grpc_target}",
        f"--remote_header=x-buildbuddy-api-key={key}", f"--build_event_binary_file={bep}",
        f"--execution_log_json_file={execution_log}")))
    runner.start()
    admins = cluster.gateway_admins()
    wait_for(lambda: started.exists() or not runner.is_alive(), within=180, what="the build to reach the gate")
    assert runner.is_alive(), build["run"].output
    holding = [name for name, url in admins.items() if streams_open(url) >= 1]
    assert len(holding) == 1, f"the build event stream should be open on exactly one gateway: {holding}"
    victim, victim_admin = holding[0], admins[holding[0]]
    pid_before = process(cluster, victim)["pid"]

    restarted: dict[str, Any] = {}
    restarter = threading.Thread(target=lambda: restarted.update(asyncio.run(control.request(
        cluster.data_dir, {"command": "restart", "process": victim}))))
    restarter.start()
    wait_for(lambda: draining(victim_admin), what="the drain to start")
    assert streams_open(victim_admin) == 1, "the stream must still be open on the draining gateway"
    release.touch()  # the rest of the build happens while the gateway drains

    runner.join(300)
    restarter.join(DRAIN_SECONDS + 60)
    run = build["run"]
    assert run.returncode == 0, run.output
    assert "Failed to" not in run.output and "WARNING: Remote Cache" not in run.output, run.output
    assert restarted["name"] == victim and restarted["pid"] != pid_before and restarted["restarts"] == 1
    # The stream was never cut and retried: no gateway process alive now ever served a build event stream
    # (the restarted one is a new process; the other took every new call after the GOAWAY).
    assert [streams_served(url) for url in cluster.gateway_admins().values()] == [0, 0]

    events = read_bep(bep)
    stored = invocations(cluster, key, invocation_id)
    assert [i.invocationStatus for i in stored] == [invocation_pb2.COMPLETE_INVOCATION_STATUS]
    assert stored[0].bazel_exit_code == "SUCCESS"
    recorded = statuses(cluster, key, invocation_id)
    assert [label for label, _ in recorded] == recorded_labels(events)
    assert {"//:gated_test": "PASSED", "//:passing_test": "PASSED", "//:sharded_test": "PASSED"}.items() <= dict(
        recorded).items()
    log = log_text(cluster.grpc_target, key, invocation_id)
    assert log == expected_log(events) and "//:gated_test" in log

    client = CacheClient(cluster.grpc_target, key)
    outputs = uploaded_outputs(execution_log)
    assert len(outputs) >= 5
    assert missing(client, outputs) == []
    for digest in outputs:
        assert digest_of(client.download(digest_out(digest))).hash == digest.hash
