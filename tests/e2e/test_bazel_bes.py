"""Real Bazel builds streamed to bbapi, read back through the documented API (curl, verbatim)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.bazel import BazelRun, Workspace
from tests.support.proxy import BreakingProxy
from tests.support.servers import ServeProcess

pytestmark = pytest.mark.bazel

STATUS_SCRIPT = """#!/bin/sh
echo "COMMIT_SHA aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
echo "REPO_URL git@github.com:acme/widgets.git"
echo "GIT_BRANCH release-7"
echo "BUILD_USER build-bot"
echo "BUILD_HOST ci-host-3"
"""
COMMIT = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def spawns(execution_log: Path) -> list[dict[str, Any]]:
    """The spawns of --execution_log_json_file: concatenated (not line-delimited) JSON objects."""
    text, decoder = execution_log.read_text(), json.JSONDecoder()
    found: list[dict[str, Any]] = []
    at = 0
    while text[at:].strip():
        spawn, at = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
        found.append(spawn)
    return found


def curl(serve: ServeProcess, method: str, body: str, key: str, raw: bool = False) -> Any:
    """The documented example, verbatim but for the host, the key and the ids."""
    command = ["curl", "-s", "-d", body, "-H", f"x-buildbuddy-api-key: {key}",
               "-H", "Content-Type: application/json", f"http://127.0.0.1:{serve.http_port}/api/v1/{method}"]
    out = subprocess.run(command, capture_output=True, check=True).stdout
    return out if raw else json.loads(out)


def build(workspace: Workspace, serve: ServeProcess, key: str, invocation_id: str, bes_port: int,
          *extra: str) -> BazelRun:
    status = workspace.root / "status.sh"
    status.write_text(STATUS_SCRIPT)
    status.chmod(0o755)
    return workspace.bazel(
        "test", "//...", f"--invocation_id={invocation_id}",
        f"--bes_backend=grpc://{key}@127.0.0.1:{bes_port}",  # Bazel 4 sends a key only this way
        f"--remote_cache=grpc://{serve.grpc_target}", f"--remote_header=x-buildbuddy-api-key={key}",
        "--build_metadata=ROLE=CI", f"--build_metadata=COMMIT_SHA={COMMIT}",
        f"--workspace_status_command={status}", *extra)


def test_a_real_build_is_recorded_and_served_by_the_documented_api(serve: ServeProcess,
                                                                    workspace: Workspace) -> None:
    key = serve.new_key("curl-tenant")
    invocation_id = str(uuid.uuid4())
    run = build(workspace, serve, key, invocation_id, serve.grpc_port)
    assert run.returncode == 3, run.output  # a test fails on purpose

    # GetInvocation, exactly as documented
    body = json.dumps({"selector": {"invocation_id": invocation_id}})
    invocation = curl(serve, "GetInvocation", body, key)["invocation"][0]
    assert invocation["id"]["invocationId"] == invocation_id
    assert invocation["invocationStatus"] == "COMPLETE_INVOCATION_STATUS"
    assert invocation["command"] == "test" and invocation["pattern"] == "//..."
    assert invocation["bazelExitCode"] == "TESTS_FAILED" and "success" not in invocation
    assert invocation["commitSha"] == COMMIT  # build metadata wins over workspace status
    assert invocation["user"] == "build-bot" and invocation["host"] == "ci-host-3"
    assert invocation["role"] == "CI" and invocation["branchName"] == "release-7"
    assert invocation["repoUrl"] == "https://github.com/acme/widgets"
    assert int(invocation["durationUsec"]) > 0 and int(invocation["actionCount"]) >= 3
    by_commit = curl(serve, "GetInvocation", json.dumps({"selector": {"commit_sha": COMMIT}}), key)
    assert invocation_id in [i["id"]["invocationId"] for i in by_commit["invocation"]]

    # GetTarget
    targets = curl(serve, "GetTarget", body, key)["target"]
    status = {t["label"]: t["status"] for t in targets}
    assert status["//:passing_test"] == "PASSED" and status["//:failing_test"] == "FAILED"
    assert status["//:sharded_test"] == "PASSED" and status["//:greeting"] == "BUILT"
    genrule = next(t for t in targets if t["label"] == "//:greeting")
    assert genrule["ruleType"] == "genrule" and "timing" not in genrule
    assert next(t for t in targets if t["label"] == "//:passing_test")["tag"] == ["smoke"]

    # GetAction: test actions carry shard/run/attempt and their test.log
    actions = curl(serve, "GetAction", body, key)["action"]
    sharded = [a for a in actions if a.get("targetLabel") == "//:sharded_test" and "shard" in a]
    assert sorted(int(a["shard"]) for a in sharded) == [1, 2, 3]
    failing_log = next(f for a in actions if a.get("targetLabel") == "//:failing_test"
                       for f in a.get("file", []) if f["name"] == "test.log")
    assert failing_log["uri"].startswith("bytestream://") and failing_log["hash"]

    # GetFile: the bytes Bazel uploaded
    assert b"this test fails on purpose" in curl(serve, "GetFile", json.dumps({"uri": failing_log["uri"]}), key,
                                                 raw=True)

    # GetLog: what Bazel printed
    log = curl(serve, "GetLog", body, key)["log"]["contents"]
    assert "Executed 3 out of 3 tests" in log and "//:failing_test" in log

    # DeleteFile of a cached action's output (the genrule's greeting.txt), then GetFile reads NOT_FOUND; the
    # cached result now references a missing blob, so the next build re-runs exactly that action and uploads it
    # again. (A test.log is no cached output: Bazel rebuilds it from the action's stdout/stderr.)
    greeting = next(f for a in actions if a.get("targetLabel") == "//:greeting"
                    for f in a.get("file", []) if f["name"] == "greeting.txt")
    assert curl(serve, "DeleteFile", json.dumps({"uri": greeting["uri"]}), key) == {}
    missing = curl(serve, "GetFile", json.dumps({"uri": greeting["uri"]}), key)
    assert missing["code"] == 5
    assert workspace.bazel("clean").returncode == 0
    second = str(uuid.uuid4())
    exec_log = workspace.root / "execution_log.json"
    again = build(workspace, serve, key, second, serve.grpc_port, f"--execution_log_json_file={exec_log}")
    assert again.returncode == 3, again.output
    # the first build ran every spawn; now only //:greeting and the failing test's two spawns (never hits: a
    # failed test is not cached and its test.xml spawn gets the run's duration) ran. The rest were hits, including
    # //:combined, whose input greeting.txt came out the same.
    executed = sorted((spawn["mnemonic"], spawn["progressMessage"]) for spawn in spawns(exec_log)
                      if not spawn.get("remoteCacheHit", False))
    assert executed == [("Genrule", "Executing genrule //:greeting"),
                        ("TestRunner", "Testing //:failing_test"), ("TestRunner", "Testing //:failing_test")]
    first_ran = run.processes()["linux-sandbox"]
    assert again.processes()["linux-sandbox"] == 3, again.processes()
    assert again.processes()["remote cache hit"] == first_ran - 3, (run.processes(), again.processes())
    assert curl(serve, "GetFile", json.dumps({"uri": greeting["uri"]}), key, raw=True) == b"hello from bbapi\n"

    # the API key Bazel carried in its options is stored nowhere
    for path in Path(serve.data_dir).glob("*.db*"):
        assert key.encode() not in path.read_bytes(), path

    # another tenant's key sees none of it
    other = serve.new_key("someone-else")
    assert curl(serve, "GetInvocation", body, other) == {}
    assert curl(serve, "GetTarget", body, other).get("target", []) == []


def test_a_broken_bes_connection_is_retried_and_nothing_is_lost_or_doubled(serve: ServeProcess,
                                                                           workspace: Workspace) -> None:
    key = serve.new_key("retry-tenant")
    proxy = BreakingProxy("127.0.0.1", serve.grpc_port).start()
    proxy.break_after(20_000)  # in the middle of the build's event stream
    invocation_id = str(uuid.uuid4())
    run = build(workspace, serve, key, invocation_id, proxy.port, "--bes_timeout=120s")
    assert run.returncode == 3, run.output
    assert proxy.breaks == 1
    body = json.dumps({"selector": {"invocation_id": invocation_id}})
    invocation = curl(serve, "GetInvocation", body, key)["invocation"][0]
    assert invocation["invocationStatus"] == "COMPLETE_INVOCATION_STATUS"
    labels = [t["label"] for t in curl(serve, "GetTarget", body, key)["target"]]
    assert len(labels) == len(set(labels)) == 6
    log = curl(serve, "GetLog", body, key)["log"]["contents"]
    assert log.count("Executed 3 out of 3 tests") == 1
