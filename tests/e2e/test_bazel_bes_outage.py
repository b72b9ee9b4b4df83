"""A real `bazel test` streaming to `bbapi cluster` while the metadata or logs process is SIGKILLed and restarted.

Each case kills one process just after the invocation appeared (the stream is under way) and lets the supervisor
restart it after 1 s or 20 s (Bazel's own few retries would be long over); the key travels in the options text
(the README's quick start: `--remote_header`) or as userinfo of the BES target. Four cases cover each victim,
each delay and each way of sending the key once, in pairs, which keeps the suite's cost to four builds.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from services.gen.api.v1 import common_pb2, invocation_pb2, target_pb2
from services.gen.build_event_stream import build_event_stream_pb2 as bep_pb2
from tests.bes.test_bes import api, expected_log, log_text
from tests.cluster.processes import ClusterProcess, wait_for
from tests.cluster.test_cluster import process
from tests.support.bazel import Workspace
from tests.support.bes import read_bep

pytestmark = pytest.mark.bazel
CASES = [("metadata-0", 1, "options"), ("logs-0", 1, "userinfo"),
         ("metadata-0", 20, "userinfo"), ("logs-0", 20, "options")]


def invocations(cluster: ClusterProcess, key: str, invocation_id: str) -> list[invocation_pb2.Invocation]:
    stub, md = api(cluster.grpc_target, key)
    return list(stub.GetInvocation(invocation_pb2.GetInvocationRequest(
        selector=invocation_pb2.InvocationSelector(invocation_id=invocation_id)), metadata=md).invocation)


def statuses(cluster: ClusterProcess, key: str, invocation_id: str) -> list[tuple[str, str]]:
    stub, md = api(cluster.grpc_target, key)
    targets = stub.GetTarget(target_pb2.GetTargetRequest(selector=target_pb2.TargetSelector(
        invocation_id=invocation_id)), metadata=md).target
    return sorted((t.label, common_pb2.Status.Name(t.status)) for t in targets)


def recorded_labels(events: list[bytes]) -> list[str]:
    return sorted(bep_pb2.BuildEvent.FromString(e).id.target_configured.label for e in events
                  if bep_pb2.BuildEvent.FromString(e).HasField("configured"))


@pytest.mark.parametrize(("victim", "delay", "key_in"), CASES)
def test_bazel_test_is_unaffected_by_a_backend_killed_mid_stream(tmp_path: Path, workspace: Workspace, victim: str,
                                                                 delay: int, key_in: str) -> None:
    cluster = ClusterProcess(tmp_path / "cluster", [
        "--gateways", "1", "--cas-shards", "1", "--replication", "1", "--restart-delay-seconds", str(delay),
        "--log-level", "warning"]).start()
    try:
        key = cluster.admin_key
        assert key is not None
        invocation_id, bep = str(uuid.uuid4()), tmp_path / "build.bep"
        flags = ([f"--bes_backend=grpc://{cluster.grpc_target}", f"--remote_cache=grpc://{cluster.grpc_target}",
                  f"--remote_header=x-buildbuddy-api-key={key}"] if key_in == "options"
                 else [f"--bes_backend=grpc://{key}@{cluster.grpc_target}"])
        build: dict[str, Any] = {}
        runner = threading.Thread(target=lambda: build.update(run=workspace.bazel(
            "test", "//...", f"--invocation_id={invocation_id}", f"--build_event_binary_file={bep}", *flags)))
        runner.start()
        wait_for(lambda: bool(invocations(cluster, key, invocation_id)) or not runner.is_alive(),
                 what="the invocation to appear")
        assert runner.is_alive(), "the build ended before the process could be killed"
        os.kill(process(cluster, victim)["pid"], signal.SIGKILL)
        runner.join(300)
        run = build["run"]
        assert run.returncode == 3, run.output  # as without the fault: one test fails on purpose
        assert process(cluster, victim)["restarts"] == 1

        events = read_bep(bep)
        stored = invocations(cluster, key, invocation_id)
        assert [i.invocationStatus for i in stored] == [invocation_pb2.COMPLETE_INVOCATION_STATUS]
        assert stored[0].bazel_exit_code == "TESTS_FAILED"
        assert [label for label, _ in statuses(cluster, key, invocation_id)] == recorded_labels(events)
        assert dict(statuses(cluster, key, invocation_id)) | {
            "//:passing_test": "PASSED", "//:failing_test": "FAILED", "//:sharded_test": "PASSED",
        } == dict(statuses(cluster, key, invocation_id))
        assert log_text(cluster.grpc_target, key, invocation_id) == expected_log(events)
    except BaseException:
        print(cluster.child_logs()[-20_000:])
        raise
    finally:
        cluster.stop()
