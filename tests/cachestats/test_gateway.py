"""Cache calls tagged with RequestMetadata are counted toward their invocation, per tenant, and read
back with GetCacheStats over HTTP; the counts survive a metadata outage and a gateway stop."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from services.allinone.settings import ServeSettings
from services.common import rpc
from services.common.auth import Capability, Principal
from services.gateway.cache_stats import CacheStatsRecorder
from services.gateway.front import CallContext
from services.gen.bbapi.api.v1 import insights_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2_grpc
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.metadata import service as metadata_service
from services.metadata.insights import cache_stats as stored
from services.metadata.settings import MetadataSettings
from tests.support.clients import CacheClient, digest
from tests.support.servers import StackServer

TIMES = ("download_usec", "upload_usec", "lookup_usec")
CAMEL_TIMES = ("downloadUsec", "uploadUsec", "lookupUsec")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    running = StackServer(ServeSettings(data_dir=tmp_path_factory.mktemp("bbapi"), host="127.0.0.1", grpc_port=0,
                                        http_port=0, min_age_seconds=0, cache_stats_flush_seconds=0.05)).start()
    yield running
    running.stop()


def new_key(server: StackServer, tenant: str) -> str:
    from services.metadata import keys
    _info, key = server.call(lambda s: keys.create_key(s.metadata.sessions, tenant, Capability.CACHE_WRITE))
    return key


def cache_stats(server: StackServer, key: str, invocation_id: str) -> tuple[int, dict[str, Any]]:
    answer = server.api("GetCacheStats", {"invocationId": invocation_id}, key=key, prefix="/api/bbapi/v1")
    return answer.status_code, answer.json()


def counters(server: StackServer, key: str, invocation_id: str, expected: dict[str, int]) -> dict[str, int]:
    """The invocation's counters (times left out) once they equal `expected` (flushes run every 50 ms)."""
    deadline = time.monotonic() + 10
    while True:
        _status, body = cache_stats(server, key, invocation_id)
        found = {k: int(v) for k, v in body.get("cacheStats", {}).items() if k not in CAMEL_TIMES}
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_kind_of_cache_call_is_counted_toward_its_invocation_and_tenant(server: StackServer) -> None:
    build, key_a, key_b = str(uuid.uuid4()), new_key(server, "stats-a"), new_key(server, "stats-b")
    a = CacheClient(server.grpc_target, key_a, invocation_id=build)
    b = CacheClient(server.grpc_target, key_b, invocation_id=build)  # another tenant naming the same build
    untagged = CacheClient(server.grpc_target, key_a)
    try:
        action = digest(os.urandom(16))
        with pytest.raises(grpc.RpcError):
            a.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action), metadata=a.metadata)
        big, small, other = os.urandom(100_000), os.urandom(10), os.urandom(20)
        a.upload(big)
        answer = a.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(requests=[
            re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(blob), data=blob) for blob in (small, other)]),
            metadata=a.metadata)
        assert all(r.status.code == 0 for r in answer.responses)
        result = re_pb2.ActionResult(output_files=[re_pb2.OutputFile(path="out", digest=digest(big))])
        a.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(action_digest=action, action_result=result),
                                metadata=a.metadata)
        a.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action), metadata=a.metadata)
        assert len(a.missing(big, small, other, b"never1", b"never2")) == 2
        assert a.download(digest(big)) == big
        read = a.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(digests=[digest(small), digest(b"never1")]),
                                    metadata=a.metadata)
        assert [r.status.code for r in read.responses] == [0, 5]
        with pytest.raises(grpc.RpcError):
            a.download(digest(b"never2"))
        untagged.download(digest(big))  # not tagged: counted nowhere
        with pytest.raises(grpc.RpcError):
            b.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action), metadata=b.metadata)
    finally:
        for client in (a, b, untagged):
            client.close()

    expected = {"actionCacheHits": 1, "actionCacheMisses": 1, "actionCacheUploads": 1,
                "casDownloads": 2, "casDownloadBytes": len(big) + len(small), "casDownloadMisses": 2,
                "casUploads": 3, "casUploadBytes": len(big) + len(small) + len(other),
                "casDigestsChecked": 5, "casDigestsMissing": 2}
    assert counters(server, key_a, build, expected) == expected
    _status, body = cache_stats(server, key_a, build)
    assert all(int(body["cacheStats"][name]) > 0 for name in CAMEL_TIMES)
    assert body["lastCall"].endswith("Z")
    # tenant b's call on the same build id is b's alone, and a third tenant does not know the build
    assert counters(server, key_b, build, {"actionCacheMisses": 1}) == {"actionCacheMisses": 1}
    assert cache_stats(server, new_key(server, "stats-c"), build)[0] == 404


def context(tenant: str, invocation_id: str, **counts: int) -> CallContext:
    tagged = re_pb2.RequestMetadata(tool_invocation_id=invocation_id).SerializeToString()
    return CallContext({}, principal=Principal(tenant, Capability.CACHE_WRITE, "k"), request_metadata=tagged,
                       counts=counts)


def test_recorder_keeps_counts_while_the_metadata_service_is_away(tmp_path: Path) -> None:
    """A flush that cannot reach the metadata service keeps its counts for the next one; stop sends the
    rest; a call that does not name an invocation, or is no cache call, counts nowhere."""
    async def scenario() -> dict[str, Any]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        channel = rpc.insecure_channel(f"127.0.0.1:{port}")
        recorder = CacheStatsRecorder(metadata_pb2_grpc.MetadataStub(channel), interval=3600, timeout=1)
        build = str(uuid.uuid4())
        start = time.perf_counter()
        recorder.observe(context("acme", build, cas_uploads=2), "ByteStream/Write", start)
        recorder.observe(context("acme", "", cas_uploads=5), "ByteStream/Write", start)
        recorder.observe(context("acme", build, cas_uploads=7), "PublishBuildEvent/PublishBuildToolEventStream",
                         start)
        await recorder.flush()  # nobody listens: kept
        recorder.observe(context("acme", build, action_cache_hits=1), "ActionCache/GetActionResult", start)
        settings = MetadataSettings(host="127.0.0.1", port=port, metrics_port=0,
                                    database=f"sqlite:///{tmp_path / 'metadata.db'}")
        metadata = await metadata_service.start(settings)
        try:
            await recorder.stop()  # the last flush
            answer = await stored.get_cache_stats(metadata.sessions, "acme",
                                                       insights_pb2.GetCacheStatsRequest(invocation_id=build))
            return {f.name: v for f, v in answer.cache_stats.ListFields() if f.name not in TIMES}
        finally:
            await channel.close()
            await metadata.stop()

    assert asyncio.run(scenario()) == {"cas_uploads": 2, "action_cache_hits": 1}



def test_recorder_holds_at_most_max_pending_invocations() -> None:
    """While flushes fail, a gateway holds counts for at most `max_pending` invocations; calls for others are
    dropped and counted, and those it holds keep counting."""
    async def scenario() -> tuple[list[str], float]:
        channel = rpc.insecure_channel("127.0.0.1:1")
        recorder = CacheStatsRecorder(metadata_pb2_grpc.MetadataStub(channel), interval=3600, max_pending=2)
        dropped = REGISTRY.get_sample_value("bbapi_gateway_cache_stats_dropped_total") or 0.0
        start = time.perf_counter()
        for invocation in ("a", "b", "c", "a"):
            recorder.observe(context("acme", invocation, cas_uploads=1), "ByteStream/Write", start)
        held = sorted(f"{key[1]}={counts['cas_uploads']}" for key, counts in recorder._pending.items())
        await channel.close()
        return held, (REGISTRY.get_sample_value("bbapi_gateway_cache_stats_dropped_total") or 0.0) - dropped

    assert asyncio.run(scenario()) == (["a=2", "b=1"], 1.0)
