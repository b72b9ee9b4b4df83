"""`bbapi serve` on a volume another writer fills: the cache's write RPCs answer RESOURCE_EXHAUSTED,
leave nothing behind, and succeed again once space is freed (the server does not wedge)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from services.allinone.settings import ServeSettings
from services.blobstore.local.store import LocalBlobAccess
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from tests.support.clients import CacheClient, digest
from tests.support.metrics import sample
from tests.support.servers import StackServer
from tests.support.volumes import fill, small_volume

MiB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StackServer]:
    with small_volume(tmp_path / "volume", "48m") as volume:
        running = StackServer(ServeSettings(data_dir=volume, host="127.0.0.1", grpc_port=0, http_port=0,
                                            min_free_bytes=MiB, key_cache_seconds=60)).start()
        try:
            yield running
        finally:
            running.stop()


def local_store(server: StackServer) -> LocalBlobAccess:
    assert server.running is not None
    store = server.running.gateway.backends.blobs.cluster.pool["local"]
    assert isinstance(store, LocalBlobAccess)
    return store


def disk_full_writes(server: StackServer) -> float:
    return sample(httpx.get(f"{server.http_url}/metrics").text, "bbapi_cas_disk_full_writes_total")


def writes(client: CacheClient, big: bytes, small: list[bytes], result: re_pb2.ActionResult) -> list[grpc.StatusCode]:
    """ByteStream Write, BatchUpdateBlobs (each item's code) and UpdateActionResult, as Bazel sends them."""
    codes = []
    try:
        client.upload(big)
        codes.append(grpc.StatusCode.OK)
    except grpc.RpcError as err:
        codes.append(err.code())
    batch = client.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(data), data=data) for data in small]),
        metadata=client.metadata)
    codes.extend(next(c for c in grpc.StatusCode if c.value[0] == r.status.code) for r in batch.responses)
    try:
        client.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(action_digest=digest(b"disk-full action"),
                                                                      action_result=result), metadata=client.metadata)
        codes.append(grpc.StatusCode.OK)
    except grpc.RpcError as err:
        codes.append(err.code())
    return codes


def test_cache_writes_on_a_full_disk_are_resource_exhausted_then_resume(server: StackServer) -> None:
    store = local_store(server)
    volume = server.settings.data_dir
    client = CacheClient(server.grpc_target, server.admin_key)
    try:
        client.upload(b"a first write reads the free space")
        store.volume.refresh_seconds = math.inf  # keep that reading: the disk fills behind the store's back
        big, small = os.urandom(4 * MiB), [os.urandom(200_000) for _ in range(4)]
        result = re_pb2.ActionResult(exit_code=0, stdout_raw=os.urandom(600_000))
        filler = fill(volume, leave=400 * 1024)
        before = disk_full_writes(server)
        exhausted = writes(client, big, small, result)
        assert exhausted == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 6
        assert disk_full_writes(server) - before == 3  # the upload, the batch's one commit, the action result
        assert list(store.layout.tmp.iterdir()) == []
        assert sorted(client.missing(big, *small)) == sorted(digest(d).hash for d in (big, *small))
        with pytest.raises(grpc.RpcError) as no_result:
            client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=digest(b"disk-full action")),
                                      metadata=client.metadata)
        assert no_result.value.code() == grpc.StatusCode.NOT_FOUND

        filler.unlink()
        assert writes(client, big, small, result) == [grpc.StatusCode.OK] * 6
        assert client.download(digest(big)) == big and client.missing(big, *small) == []
    finally:
        client.close()
