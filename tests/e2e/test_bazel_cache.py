"""A real Bazel uses bbapi as its remote cache: a rebuild after `bazel clean` is all hits."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.bazel import Workspace
from tests.support.servers import ServeProcess

pytestmark = pytest.mark.bazel


def _built_then_all_hits(workspace: Workspace, cache: list[str]) -> None:
    """A build that runs its actions itself, then, after `bazel clean`, one where every action is a hit."""
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


def test_rebuild_is_all_remote_cache_hits_and_tenants_are_separate(serve: ServeProcess,
                                                                     workspace: Workspace) -> None:
    key = serve.new_key("team-a")
    _built_then_all_hits(workspace, [f"--remote_cache=grpc://{serve.grpc_target}",
                                     f"--remote_header=x-buildbuddy-api-key={key}"])

    other = serve.new_key("team-b")
    assert workspace.bazel("clean").returncode == 0
    third = workspace.bazel("build", "//...", f"--remote_cache=grpc://{serve.grpc_target}",
                            f"--remote_header=x-buildbuddy-api-key={other}")
    assert third.returncode == 0, third.output
    assert "remote cache hit" not in third.processes(), third.processes()


def test_another_digest_function_is_cached_apart_from_sha256(serve: ServeProcess, workspace: Workspace) -> None:
    """Bazel 4 hashes with SHA-1 when told to (this Bazel predates BLAKE3) and sends no
    digest_function: the 40-character hashes say which function they are."""
    key = serve.new_key("digests")
    cache = [f"--remote_cache=grpc://{serve.grpc_target}", f"--remote_header=x-buildbuddy-api-key={key}"]
    assert workspace.bazel("build", "//...", *cache).returncode == 0  # SHA-256 first: its entries are no hits
    workspace.shutdown()
    workspace.startup = ["--digest_function=sha1"]
    _built_then_all_hits(workspace, cache)


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


def test_cas_write_key_shares_a_ci_cache_and_streams_builds(serve: ServeProcess, workspace: Workspace) -> None:
    """A developer's cas-write key reads what CI's cache-write key stored and streams its build to BES;
    Bazel must not try to write action results (--noremote_upload_local_results), but uploads the
    files its build events name (test logs), which cas-write allows."""
    without_cache = workspace.bazel("test", "//...")
    assert without_cache.returncode == 3, without_cache.output  # a test fails on purpose
    assert workspace.bazel("clean").returncode == 0
    ci = serve.new_key("shared-cache", "cache-write")
    populated = workspace.bazel("test", "//...", f"--remote_cache=grpc://{serve.grpc_target}",
                                f"--remote_header=x-buildbuddy-api-key={ci}")
    assert populated.returncode == without_cache.returncode, populated.output
    assert workspace.bazel("clean").returncode == 0

    developer = serve.new_key("shared-cache", "cas-write")
    invocation_id = str(uuid.uuid4())
    run = workspace.bazel("test", "//...", f"--invocation_id={invocation_id}",
                          f"--remote_cache=grpc://{serve.grpc_target}",
                          f"--bes_backend=grpc://{developer}@{serve.grpc_target}",
                          f"--remote_header=x-buildbuddy-api-key={developer}",
                          "--noremote_upload_local_results")
    assert run.returncode == without_cache.returncode, run.output
    assert "PERMISSION_DENIED" not in run.output and "WARNING: Remote Cache" not in run.output, run.output
    assert run.processes().get("remote cache hit", 0) >= 3, run.processes()
    recorded = httpx.post(f"http://127.0.0.1:{serve.http_port}/api/v1/GetInvocation",
                          json={"selector": {"invocation_id": invocation_id}},
                          headers={"authorization": f"Bearer {developer}"}).json()["invocation"]
    assert [i["invocationStatus"] for i in recorded] == ["COMPLETE_INVOCATION_STATUS"]
