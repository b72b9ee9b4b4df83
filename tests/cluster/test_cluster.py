"""`bbapi cluster` as a user runs it: real processes, a real Bazel, a shard killed, a shard added."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.blobstore.access import Scope
from services.blobstore.local.verify import digest_of
from services.cluster import control
from services.common.convert import digest_in, digest_out
from services.common.errors import Unavailable
from services.common.resources import Digest
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from tests.cluster.processes import ClusterProcess, bbapi, wait_for
from tests.support.bazel import Workspace
from tests.support.clients import CacheClient

DEFAULT = Scope("default")  # the admin key's tenant, empty instance name


def supervisor_status(cluster: ClusterProcess) -> dict[str, Any]:
    return asyncio.run(control.request(cluster.data_dir, {"command": "status"}))


def process(cluster: ClusterProcess, name: str) -> dict[str, Any]:
    return next(p for p in supervisor_status(cluster)["processes"] if p["name"] == name)


def stored_entries(cluster: ClusterProcess) -> float:
    return float(sum(p["stored"]["entries"] for p in supervisor_status(cluster)["processes"] if p["stored"]))


def missing(client: CacheClient, digests: list[Digest]) -> list[Digest]:
    request = re_pb2.FindMissingBlobsRequest(blob_digests=[digest_out(d) for d in digests])
    return [digest_in(d) for d in client.cas.FindMissingBlobs(request, metadata=client.metadata).missing_blob_digests]


def uploaded_outputs(execution_log: Path) -> list[Digest]:
    """Every output Bazel produced and uploaded (remote-cacheable spawns), from --execution_log_json_file."""
    text, decoder, position, found = execution_log.read_text(), json.JSONDecoder(), 0, []
    while position < len(text):
        entry, position = decoder.raw_decode(text, position)
        while position < len(text) and text[position].isspace():
            position += 1
        if entry.get("remoteCacheable") and not entry.get("remoteCacheHit"):
            found += [Digest(o["digest"]["hash"], int(o["digest"]["sizeBytes"])) for o in entry["actualOutputs"]]
    return list(dict.fromkeys(found))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    running = ClusterProcess(tmp_path / "cluster", ["--gateways", "2", "--cas-shards", "3", "--replication", "2",
                                                    "--restart-delay-seconds", "6", "--min-age-seconds", "0",
                                                    "--log-level", "warning"]).start()
    yield running
    assert running.stop() == 0
    assert not (tmp_path / "cluster" / control.SOCKET_NAME).exists()


@pytest.mark.bazel
def test_bazel_build_survives_a_shard_killed_mid_build(cluster: ClusterProcess, workspace: Workspace,
                                                       tmp_path: Path) -> None:
    assert cluster.admin_key is not None
    log = tmp_path / "exec.json"
    flags = [f"--remote_cache=grpc://{cluster.grpc_target}",
             f"--remote_header=x-buildbuddy-api-key={cluster.admin_key}", "--test_tag_filters=-expected-failure"]
    build: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: build.update(run=workspace.bazel(
        "test", "//...", *flags, f"--execution_log_json_file={log}")))
    runner.start()
    wait_for(lambda: stored_entries(cluster) > 0 or not runner.is_alive(), what="Bazel's first upload")
    victim = process(cluster, "cas-1")
    os.kill(victim["pid"], signal.SIGKILL)
    client = CacheClient(cluster.grpc_target, cluster.admin_key)
    ours = [os.urandom(20_000 + i) for i in range(30)]  # uploads certain to meet the outage
    for blob in ours:
        assert client.upload(blob) == len(blob)
    assert process(cluster, "cas-1")["pid"] is None, "the shard came back too early for this test"
    runner.join(300)
    run = build["run"]
    assert run.returncode == 0, run.output
    assert "WARNING: Remote Cache" not in run.output and "Failed to" not in run.output, run.output

    outputs = uploaded_outputs(log)
    assert len(outputs) >= 5
    wanted = [*outputs, *(digest_of(b) for b in ours)]
    assert missing(client, wanted) == []
    for digest in outputs:
        assert digest_of(client.download(digest_out(digest))).hash == digest.hash
    for blob in ours:
        assert client.download(digest_out(digest_of(blob))) == blob

    wait_for(lambda: process(cluster, "cas-1")["pid"] is not None, what="the shard's restart")
    owners = cluster.membership()
    assert "cas-1" in {m.id for m in owners.members}
    wait_for(lambda: not _under_replicated(cluster, wanted), what="hand-offs to drain")
    assert process(cluster, "cas-1")["restarts"] == 1

    assert workspace.bazel("clean").returncode == 0
    again = workspace.bazel("test", "//...", *flags)
    assert again.returncode == 0, again.output
    assert set(again.processes()) <= {"remote cache hit", "internal"}, again.processes()


def _under_replicated(cluster: ClusterProcess, digests: list[Digest]) -> list[Digest]:
    try:
        placed = cluster.placed(DEFAULT, digests)
    except Unavailable:  # the shard is still starting
        return digests
    return [digest for digest, held, owners in placed if not held >= owners]


def test_growing_from_3_to_4_shards_under_load_loses_nothing(cluster: ClusterProcess) -> None:
    assert cluster.admin_key is not None
    client = CacheClient(cluster.grpc_target, cluster.admin_key)
    blobs = [os.urandom(1000 + i) for i in range(300)] + [os.urandom(2 * 1024 * 1024)]
    for blob in blobs:
        client.upload(blob)
    problems: list[str] = []
    stop = threading.Event()

    def load() -> None:
        """Keep writing new blobs and checking that every blob written so far stays readable."""
        worker = CacheClient(cluster.grpc_target, cluster.admin_key)
        while not stop.is_set():
            fresh = os.urandom(5000)
            worker.upload(fresh)
            blobs.append(fresh)
            missing = worker.missing(*blobs)
            if missing:
                problems.append(f"FindMissingBlobs lost {len(missing)} blobs, e.g. {missing[0]}")
            sample = random.choice(blobs)
            if worker.download(digest_out(digest_of(sample))) != sample:
                problems.append(f"read of {digest_of(sample)} returned other bytes")
        worker.close()

    loader = threading.Thread(target=load)
    loader.start()
    try:
        scaled = bbapi("cluster", "scale", "--cas-shards", "4", "--data-dir", str(cluster.data_dir))
    finally:
        stop.set()
        loader.join(60)
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    assert "cas-3" in scaled.stdout and "migrating" in scaled.stdout
    assert problems == []

    doc = cluster.membership()
    assert [m.id for m in doc.members] == ["cas-0", "cas-1", "cas-2", "cas-3"] and doc.previous is None
    admin = process(cluster, "gateway-0")["admin"]
    status = httpx.get(f"{admin}/status/membership").json()
    assert status["generation"] == doc.generation and status["migrating"] is False
    assert cluster.misplaced(DEFAULT, blobs) == []
    assert client.missing(*blobs) == []
    text = bbapi("cluster", "status", "--data-dir", str(cluster.data_dir)).stdout
    assert "cas-3" in text and "Migration: idle" in text
    unknown = bbapi("cluster", "restart", "--process", "cas-9", "--data-dir", str(cluster.data_dir))
    assert unknown.returncode == 1 and "no process 'cas-9'" in unknown.stderr
