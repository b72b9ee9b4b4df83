"""Flaky tests and target history from real Bazel runs, read back with curl as the README shows.

Two `bazel test` runs of one commit: in the first, //:flaky_once fails and passes on its retry
(--flaky_test_attempts=2: Bazel reports it FLAKY) and //:flips fails; in the second, //:flips passes.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.bazel import Workspace
from tests.support.servers import ServeProcess

pytestmark = pytest.mark.bazel
COMMIT = "cccccccccccccccccccccccccccccccccccccccc"


def curl(serve: ServeProcess, method: str, body: object, key: str) -> Any:
    command = ["curl", "-s", "-d", json.dumps(body), "-H", f"x-buildbuddy-api-key: {key}",
               "-H", "Content-Type: application/json", f"http://127.0.0.1:{serve.http_port}/api/bbapi/v1/{method}"]
    return json.loads(subprocess.run(command, capture_output=True, check=True).stdout)


@pytest.fixture
def flaky_workspace(tmp_path: Path, bazel_root: Path) -> Any:
    ws = Workspace.create(tmp_path / "ws", bazel_root, source="flaky_workspace")
    yield ws
    ws.shutdown()


def test_flaky_and_flipping_tests_of_real_builds(serve: ServeProcess, flaky_workspace: Workspace,
                                                 tmp_path: Path) -> None:
    key = serve.new_key("flaky-tenant")
    markers = tmp_path / "markers"
    markers.mkdir()

    def run(outcome: str) -> str:
        invocation_id = str(uuid.uuid4())
        result = flaky_workspace.bazel(
            "test", "//...", f"--invocation_id={invocation_id}", f"--bes_backend=grpc://{key}@{serve.grpc_target}",
            "--flaky_test_attempts=2", "--nocache_test_results", f"--test_env=MARKER_DIR={markers}",
            f"--sandbox_writable_path={markers}", f"--test_env=OUTCOME={outcome}",
            f"--build_metadata=COMMIT_SHA={COMMIT}", "--build_metadata=BRANCH_NAME=main")
        assert result.returncode == (0 if outcome == "pass" else 3), result.output
        return invocation_id

    first, second = run("fail"), run("pass")

    flaky = curl(serve, "GetFlakyTests", {}, key)["flakyTest"]
    assert [(t["label"], t["invocationCount"], t.get("flakyCount", "0"), t.get("flippedCommitCount", "0"),
             t["invocationId"]) for t in flaky] == [
        ("//:flips", "2", "0", "1", [second, first]),  # failed, then passed, on the same commit
        ("//:flaky_once", "1", "1", "0", [first]),  # Bazel retried it and reported it FLAKY
    ]
    history = curl(serve, "GetTargetHistory", {"label": "//:flips", "branch_name": "main"}, key)["run"]
    assert [(r["invocationId"], r["status"], r["commitSha"], r["branchName"]) for r in history] == [
        (second, "PASSED", COMMIT, "main"), (first, "FAILED", COMMIT, "main")]
    assert "duration" in history[0]["timing"]
    statuses = {status: [i["id"]["invocationId"] for i in curl(serve, "SearchInvocations", {
        "query": {"commit_sha": COMMIT, "status": status}}, key).get("invocation", [])]
        for status in ("SUCCESS", "FAILURE")}
    assert statuses == {"SUCCESS": [second], "FAILURE": [first]}
    other = serve.new_key("not-flaky-tenant", "read")
    assert curl(serve, "GetFlakyTests", {}, other) == {}
    assert curl(serve, "GetTargetHistory", {"label": "//:flips"}, other) == {}
