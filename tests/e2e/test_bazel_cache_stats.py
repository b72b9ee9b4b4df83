"""A real Bazel's cache traffic, counted per invocation, matches what Bazel itself reported.

A cold build runs and uploads its actions, then after `bazel clean` a rebuild takes every action from
the cache. For each, GetCacheStats must agree with Bazel's own account: the "N remote cache hit" line
it printed, and its log of every remote call (`--experimental_remote_grpc_log`), whose ByteStream
resource names say which blobs, of what size, it read and wrote.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.bazel import Workspace
from tests.support.servers import ServeProcess

pytestmark = pytest.mark.bazel
BLOB = re.compile(rb"(uploads/[0-9a-f-]{36}/)?blobs/[0-9a-f]{64}/([0-9]+)")


def calls(log: Path, method: str) -> int:
    """How many calls of a REAPI method (e.g. "ActionCache/GetActionResult") Bazel's gRPC log records."""
    return log.read_bytes().count(f".{method}".encode())


def read_sizes(log: Path) -> list[int]:
    """The size of every blob Bazel read with ByteStream: a read names `blobs/HASH/SIZE`, a write
    `uploads/UUID/blobs/HASH/SIZE`."""
    return [int(m.group(2)) for m in BLOB.finditer(log.read_bytes()) if m.group(1) is None]


def cache_stats(serve: ServeProcess, key: str, invocation_id: str, settled: dict[str, int]) -> dict[str, int]:
    """GetCacheStats over HTTP, polled until it shows `settled` (the gateway flushes every second)."""
    deadline = time.monotonic() + 15
    while True:
        answer = httpx.post(f"http://127.0.0.1:{serve.http_port}/api/bbapi/v1/GetCacheStats",
                            json={"invocationId": invocation_id}, headers={"x-buildbuddy-api-key": key})
        assert answer.status_code == 200, answer.text
        found = {name: int(value) for name, value in answer.json()["cacheStats"].items()}
        if all(found.get(k, 0) == v for k, v in settled.items()) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_cache_statistics_of_a_cold_build_and_a_rebuild_match_bazels_account(
        serve: ServeProcess, workspace: Workspace, tmp_path: Path) -> None:
    key = serve.new_key("stats-e2e")
    cache = [f"--remote_cache=grpc://{serve.grpc_target}", f"--remote_header=x-buildbuddy-api-key={key}",
             f"--bes_backend=grpc://{key}@{serve.grpc_target}"]

    def build(name: str) -> tuple[str, dict[str, int], Path]:
        invocation_id, log = str(uuid.uuid4()), tmp_path / f"{name}.grpc.log"
        run = workspace.bazel("build", "//:combined", f"--invocation_id={invocation_id}",
                              f"--experimental_remote_grpc_log={log}", *cache)
        assert run.returncode == 0, run.output
        return invocation_id, run.processes(), log

    cold_id, cold_processes, cold_log = build("cold")
    executed = cold_processes.get("linux-sandbox", 0) + cold_processes.get("processwrapper-sandbox", 0)
    assert executed == 3 and "remote cache hit" not in cold_processes, cold_processes
    misses, updates = calls(cold_log, "ActionCache/GetActionResult"), calls(cold_log, "ActionCache/UpdateActionResult")
    assert misses == updates == executed
    cold = cache_stats(serve, key, cold_id, {"actionCacheMisses": misses, "actionCacheUploads": updates})
    assert (cold.get("actionCacheHits", 0), cold["actionCacheMisses"], cold["actionCacheUploads"]) == (0, 3, 3), cold
    assert cold["casUploads"] == cold["casDigestsMissing"] > 0 and cold.get("casDownloads", 0) == 0, cold

    assert workspace.bazel("clean").returncode == 0
    warm_id, warm_processes, warm_log = build("warm")
    reads = read_sizes(warm_log)
    warm = cache_stats(serve, key, warm_id, {"actionCacheHits": warm_processes["remote cache hit"],
                                             "casDownloadBytes": sum(reads)})
    assert warm["actionCacheHits"] == warm_processes["remote cache hit"] == 3, (warm, warm_processes)
    assert (warm["casDownloads"], warm["casDownloadBytes"]) == (len(reads), sum(reads)), (warm, reads)
    assert warm.get("actionCacheMisses", 0) == 0 and warm["downloadUsec"] > 0 and warm["lookupUsec"] > 0, warm
    # another tenant's key cannot read this build's statistics
    other = httpx.post(f"http://127.0.0.1:{serve.http_port}/api/bbapi/v1/GetCacheStats",
                       json={"invocationId": warm_id}, headers={"x-buildbuddy-api-key": serve.new_key("stats-other")})
    assert other.status_code == 404, other.text
