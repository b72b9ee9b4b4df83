"""`bbapi serve` and `bbapi cluster` run one blob-store stack, so they answer alike."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest
import zstandard

from services.common.hashing import DigestFunction
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from tests.cluster.processes import ClusterProcess
from tests.support.clients import CacheClient, digest
from tests.support.metrics import sample
from tests.support.servers import ServeProcess


@pytest.fixture(scope="module", params=["serve", "cluster"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp(request.param)
    process = ServeProcess(root) if request.param == "serve" else \
        ClusterProcess(root, ["--gateways", "1", "--cas-shards", "2", "--replication", "1"])
    process.start()
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def client(running: ServeProcess) -> Iterator[CacheClient]:
    assert running.admin_key is not None
    c = CacheClient(running.grpc_target, running.admin_key)
    yield c
    c.close()


def test_get_tree_with_a_missing_subtree_returns_the_present_part(client: CacheClient) -> None:
    a1 = re_pb2.Directory(files=[re_pb2.FileNode(name="f", digest=digest(b"file in a1"))])
    a = re_pb2.Directory(directories=[re_pb2.DirectoryNode(name="a1", digest=digest(a1.SerializeToString()))])
    b = re_pb2.Directory(files=[re_pb2.FileNode(name="g", digest=digest(b"file in b"))])  # never uploaded
    root = re_pb2.Directory(directories=[re_pb2.DirectoryNode(name="a", digest=digest(a.SerializeToString())),
                                         re_pb2.DirectoryNode(name="b", digest=digest(b.SerializeToString()))])
    for directory in (a1, a, root):
        client.upload(directory.SerializeToString())
    responses = list(client.cas.GetTree(re_pb2.GetTreeRequest(root_digest=digest(root.SerializeToString())),
                                        metadata=client.metadata))
    assert [d for r in responses for d in r.directories] == [root, a, a1]


def _ac_misses(running: ServeProcess) -> float:
    """Action-cache misses counted by the gateways (a cluster's gateways serve /metrics on their admin ports)."""
    urls = (running.gateway_admins().values() if isinstance(running, ClusterProcess)
            else [f"http://127.0.0.1:{running.http_port}"])
    return sum(sample(httpx.get(f"{url}/metrics").text, "bbapi_gateway_cache_requests_total", cache="ac",
                      result="miss", tenant="default") for url in urls)


def test_an_action_cache_miss_is_not_found_and_counted_as_a_miss(running: ServeProcess,
                                                                 client: CacheClient) -> None:
    before = _ac_misses(running)
    for n in range(3):
        with pytest.raises(grpc.RpcError) as raised:
            client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=digest(b"never run %d" % n)),
                                      metadata=client.metadata)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert _ac_misses(running) == before + 3


# ----- digest functions: a BLAKE3 blob is a blob of its own, end to end ------------------------------

BLAKE3 = DigestFunction.BLAKE3
B3 = re_pb2.DigestFunction.Value.BLAKE3


def _api(running: ServeProcess, method: str, body: dict[str, object]) -> httpx.Response:
    assert running.admin_key is not None
    return httpx.post(f"http://127.0.0.1:{running.http_port}/api/v1/{method}", json=body,
                      headers={"x-buildbuddy-api-key": running.admin_key})


def test_capabilities_list_sha256_and_blake3(client: CacheClient) -> None:
    caps = client.caps.GetCapabilities(re_pb2.GetCapabilitiesRequest(), metadata=client.metadata)
    assert {re_pb2.DigestFunction.Value.SHA256, B3} <= set(caps.cache_capabilities.digest_functions)


def test_a_blake3_blob_written_through_bytestream_is_its_own_entry(running: ServeProcess,
                                                                 client: CacheClient) -> None:
    data = os.urandom(300_000)  # larger than a packed blob: it streams to a file of its own
    b3, sha = digest(data, BLAKE3), digest(data)
    assert client.missing(data, function=BLAKE3) == [b3.hash]
    assert client.upload(data, function=BLAKE3) == len(data)
    assert client.missing(data, function=BLAKE3) == []
    assert client.missing(data) == [sha.hash]  # the same bytes under SHA-256: not stored
    assert client.download(b3, function=BLAKE3) == data
    assert zstandard.ZstdDecompressor().decompressobj().decompress(
        client.download(b3, compressed=True, function=BLAKE3)) == data
    with pytest.raises(grpc.RpcError) as raised:
        client.download(sha)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    # the API's file URIs name the function too; File URIs without it would mean SHA-256
    uri = f"bytestream://cache.example:1985/blobs/blake3/{b3.hash}/{b3.size_bytes}"
    fetched = _api(running, "GetFile", {"uri": uri})
    assert (fetched.status_code, fetched.content) == (200, data)
    ranged = _api(running, "GetFileRange", {"uri": uri, "start": 10, "end": 20})
    assert base64.b64decode(ranged.json()["data"]) == data[10:20]
    assert _api(running, "GetFile", {"uri": f"bytestream://h/blobs/{b3.hash}/{b3.size_bytes}"}).status_code == 404
    client.upload(data)
    assert _api(running, "DeleteFile", {"uri": uri}).status_code == 200
    latest = _api(running, "GetAuditLog", {"pageSize": 1}).json()["entry"][0]
    assert latest["resource"]["id"] == f"cas:/blake3/{b3.hash}/{b3.size_bytes}"
    assert client.missing(data, function=BLAKE3) == [b3.hash]
    assert client.missing(data) == []  # deleting the BLAKE3 entry leaves the SHA-256 one
    assert _api(running, "GetFile", {"uri": uri}).status_code == 404


def test_a_blake3_blob_written_in_a_batch_is_found_and_read_by_blake3_only(client: CacheClient) -> None:
    data = os.urandom(5_000)
    b3 = digest(data, BLAKE3)
    written = client.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(
        digest_function=B3, requests=[re_pb2.BatchUpdateBlobsRequest.Request(digest=b3, data=data)]),
        metadata=client.metadata)
    assert [r.status.code for r in written.responses] == [0]
    assert client.missing(data, function=BLAKE3) == []
    assert client.missing(data) == [digest(data).hash]
    assert client.download(b3, function=BLAKE3) == data
    read = client.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(digest_function=B3, digests=[b3]),
                                     metadata=client.metadata)
    assert [(r.digest, r.data, r.status.code) for r in read.responses] == [(b3, data, 0)]
    as_sha256 = client.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(digests=[digest(data)]),
                                          metadata=client.metadata)
    assert [r.status.code for r in as_sha256.responses] == [grpc.StatusCode.NOT_FOUND.value[0]]


def test_a_wrong_blake3_hash_is_refused(client: CacheClient) -> None:
    data, other = os.urandom(4_000), os.urandom(4_000)
    wrong = re_pb2.Digest(hash=digest(other, BLAKE3).hash, size_bytes=len(data))
    batch = client.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(
        digest_function=B3, requests=[re_pb2.BatchUpdateBlobsRequest.Request(digest=wrong, data=data)]),
        metadata=client.metadata)
    assert batch.responses[0].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "hash mismatch" in batch.responses[0].status.message
    for payload in (data, os.urandom(300_000)):  # packed and streamed to a file
        sha256_name = f"uploads/{uuid.uuid4()}/blobs/blake3/{digest(payload).hash}/{len(payload)}"
        with pytest.raises(grpc.RpcError) as raised:
            client.bytestream.Write(client.write_requests(payload, sha256_name), metadata=client.metadata)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # without a segment a 64-character hash means SHA-256: a BLAKE3 hash there does not verify
    unnamed = f"uploads/{uuid.uuid4()}/blobs/{digest(data, BLAKE3).hash}/{len(data)}"
    with pytest.raises(grpc.RpcError) as raised:
        client.bytestream.Write(client.write_requests(data, unnamed), metadata=client.metadata)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert client.missing(data, other, function=BLAKE3) == [digest(data, BLAKE3).hash, digest(other, BLAKE3).hash]


def test_a_blake3_action_result_needs_its_blake3_outputs(client: CacheClient) -> None:
    output = os.urandom(2_000)
    client.upload(output, function=BLAKE3)
    action = digest(b"a blake3 action %s" % uuid.uuid4().bytes, BLAKE3)
    result = re_pb2.ActionResult(output_files=[re_pb2.OutputFile(path="out", digest=digest(output, BLAKE3))])
    client.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(
        digest_function=B3, action_digest=action, action_result=result), metadata=client.metadata)
    found = client.ac.GetActionResult(re_pb2.GetActionResultRequest(digest_function=B3, action_digest=action),
                                      metadata=client.metadata)
    assert found == result  # its output was found among the BLAKE3 blobs
    with pytest.raises(grpc.RpcError) as raised:  # the same hash as a SHA-256 action is another key
        client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action), metadata=client.metadata)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
