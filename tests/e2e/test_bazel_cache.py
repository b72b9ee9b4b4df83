"""A real Bazel uses bbapi as its remote cache: a rebuild after `bazel clean` is all hits."""

from __future__ import annotations

import pytest

from tests.support.bazel import Workspace
from tests.support.servers import ServeProcess

pytestmark = pytest.mark.bazel


def test_rebuild_is_all_remote_cache_hits_and_tenants_are_separate(serve: ServeProcess,
                                                                     workspace: Workspace) -> None:
    key = serve.new_key("team-a")
    cache = [f"--remote_cache=grpc://{serve.grpc_target}", f"--remote_header=x-buildbuddy-api-key={key}"]
    first = workspace.bazel("build", "//...", *cache)
    assert first.returncode == 0, first.output
    executed = first.processes()
    assert executed.get("linux-sandbox", 0) + executed.get("processwrapper-sandbox", 0) >= 3, executed

    assert workspace.bazel("clean").returncode == 0
    second = workspace.bazel("build", "//...", *cache)
    assert second.returncode == 0, second.output
    hits = second.processes()
    assert hits.get("remote cache hit", 0) >= 3, hits
    assert set(hits) <= {"remote cache hit", "internal"}, f"not every action was a cache hit: {hits}"

    other = serve.new_key("team-b")
    assert workspace.bazel("clean").returncode == 0
    third = workspace.bazel("build", "//...", f"--remote_cache=grpc://{serve.grpc_target}",
                            f"--remote_header=x-buildbuddy-api-key={other}")
    assert third.returncode == 0, third.output
    assert "remote cache hit" not in third.processes(), third.processes()


def test_key_as_target_userinfo_works_for_bazel_4(serve: ServeProcess, workspace: Workspace) -> None:
    key = serve.new_key("team-c")
    run = workspace.bazel("build", "//:greeting", f"--remote_cache=grpc://{key}@{serve.grpc_target}")
    assert run.returncode == 0, run.output
    assert "WARNING: Remote Cache" not in run.output, run.output
    assert workspace.bazel("clean").returncode == 0
    again = workspace.bazel("build", "//:greeting", f"--remote_cache=grpc://{key}@{serve.grpc_target}")
    assert again.processes().get("remote cache hit") == 1, again.output


def test_bad_key_makes_bazel_report_the_cache_unusable(serve: ServeProcess, workspace: Workspace) -> None:
    run = workspace.bazel("build", "//:greeting", f"--remote_cache=grpc://{serve.grpc_target}",
                          "--remote_header=x-buildbuddy-api-key=AAAAAAAAAAAAAAAAAAAA")
    assert run.returncode != 0 or "UNAUTHENTICATED" in run.output, run.output
    assert "Invalid API key" in run.output
