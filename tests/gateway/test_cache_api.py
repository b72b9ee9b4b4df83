"""Every REAPI cache RPC through the public port of a live stack, good input and bad."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial

import grpc
import pytest
import zstandard

from services.blobstore.access import Scope
from services.common.auth import Capability
from services.common.resources import Digest
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from services.metadata import keys
from tests.support.clients import CacheClient, digest
from tests.support.metrics import sample
from tests.support.servers import StackServer

ZSTD = re_pb2.Compressor.Value.ZSTD


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    code: grpc.StatusCode = rpc_error(call).code()
    return code


# ----- capabilities and authentication -----------------------------------------------------------

def test_capabilities_advertise_digest_functions_zstd_and_a_batch_limit(client: CacheClient) -> None:
    caps = client.caps.GetCapabilities(re_pb2.GetCapabilitiesRequest(), metadata=client.metadata)
    cache = caps.cache_capabilities
    functions = re_pb2.DigestFunction.Value
    assert sorted(cache.digest_functions) == sorted([functions.SHA256, functions.BLAKE3, functions.SHA1,
                                                     functions.SHA384, functions.SHA512])
    assert list(cache.supported_compressors) == [ZSTD]
    assert list(cache.supported_batch_update_compressors) == [ZSTD]
    assert cache.max_batch_total_size_bytes == 4 * 1024 * 1024
    assert cache.action_cache_update_capabilities.update_enabled
    assert (caps.low_api_version.major, caps.high_api_version.major) == (2, 2)


def test_read_only_key_cannot_update_the_action_cache(server: StackServer, make_key: Callable[..., str]) -> None:
    reader = CacheClient(server.grpc_target, make_key("readers", Capability.READ))
    caps = reader.caps.GetCapabilities(re_pb2.GetCapabilitiesRequest(), metadata=reader.metadata)
    assert not caps.cache_capabilities.action_cache_update_capabilities.update_enabled
    request = re_pb2.UpdateActionResultRequest(action_digest=digest(b"a"), action_result=re_pb2.ActionResult())
    err = rpc_error(lambda: reader.ac.UpdateActionResult(request, metadata=reader.metadata))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "cache-write" in err.details()
    assert code_of(lambda: reader.upload(b"data from a reader")) == grpc.StatusCode.PERMISSION_DENIED
    assert reader.missing(b"x") == [digest(b"x").hash]  # reads work


def test_cas_write_key_uploads_blobs_but_not_action_results(server: StackServer,
                                                            make_key: Callable[..., str]) -> None:
    writer = CacheClient(server.grpc_target, make_key("developers", Capability.CAS_WRITE))
    caps = writer.caps.GetCapabilities(re_pb2.GetCapabilitiesRequest(), metadata=writer.metadata)
    assert not caps.cache_capabilities.action_cache_update_capabilities.update_enabled
    streamed, batched = b"a test log Bazel uploads for BES", b"a small output"
    assert writer.upload(streamed) == len(streamed)
    answer = writer.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(batched), data=batched)]), metadata=writer.metadata)
    assert [r.status.code for r in answer.responses] == [0]
    assert writer.missing(streamed, batched) == []
    request = re_pb2.UpdateActionResultRequest(action_digest=digest(b"an action"), action_result=re_pb2.ActionResult())
    err = rpc_error(lambda: writer.ac.UpdateActionResult(request, metadata=writer.metadata))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "cas-write" in err.details()


def test_capability_levels() -> None:
    assert Capability.parse("cas-write") is Capability.CAS_WRITE
    assert Capability.CACHE_WRITE.includes(Capability.CAS_WRITE) and Capability.ADMIN.includes(Capability.CAS_WRITE)
    assert Capability.CAS_WRITE.includes(Capability.READ) and not Capability.READ.includes(Capability.CAS_WRITE)
    assert not Capability.CAS_WRITE.includes(Capability.CACHE_WRITE)
    assert [c.value for c in Capability] == [1, 2, 3, 4]  # what stored keys hold: existing values never move


def test_missing_bad_and_revoked_keys_are_unauthenticated(server: StackServer, make_key: Callable[..., str]) -> None:
    for key in (None, "short", "A" * 20):
        assert code_of(partial(CacheClient(server.grpc_target, key).missing, b"x")) == \
            grpc.StatusCode.UNAUTHENTICATED
    err = rpc_error(lambda: CacheClient(server.grpc_target, "A" * 20).missing(b"x"))
    assert "Invalid API key A***A" in err.details()
    revoked = CacheClient(server.grpc_target, make_key("leavers"))
    assert revoked.missing(b"x")
    key_id = server.call(lambda s: keys.list_keys(s.metadata.sessions, "leavers"))[0].id
    server.call(lambda s: keys.revoke_key(s.metadata.sessions, key_id))
    time.sleep(0.3)  # the gateway trusts a resolved key for key_cache_seconds (0.2 s here)
    assert code_of(lambda: revoked.missing(b"x")) == grpc.StatusCode.UNAUTHENTICATED


def test_key_in_target_userinfo_is_accepted(server: StackServer) -> None:
    """Bazel 4 sends grpc://KEY@host as the HTTP/2 :authority."""
    channel = grpc.insecure_channel(server.grpc_target,
                                    options=[("grpc.default_authority", f"{server.admin_key}@{server.grpc_target}")])
    stub = CacheClient(server.grpc_target, None)
    stub.cas = type(stub.cas)(channel)
    assert stub.cas.FindMissingBlobs(re_pb2.FindMissingBlobsRequest(blob_digests=[digest(b"zz")])).missing_blob_digests


def test_tenants_do_not_see_each_others_blobs(server: StackServer, make_key: Callable[..., str]) -> None:
    alice = CacheClient(server.grpc_target, make_key("alice"))
    bob = CacheClient(server.grpc_target, make_key("bob"))
    secret = os.urandom(1000)
    alice.upload(secret)
    assert alice.missing(secret) == []
    assert bob.missing(secret) == [digest(secret).hash]
    assert code_of(lambda: bob.download(digest(secret))) == grpc.StatusCode.NOT_FOUND
    batch = bob.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(digests=[digest(secret)]), metadata=bob.metadata)
    assert batch.responses[0].status.code == grpc.StatusCode.NOT_FOUND.value[0]


# ----- CAS -----------------------------------------------------------------------------------------

def test_find_missing_and_batch_roundtrip_with_instances(client: CacheClient) -> None:
    a, b = os.urandom(100), os.urandom(200)
    assert sorted(client.missing(a, b, instance="ci/linux")) == sorted([digest(a).hash, digest(b).hash])
    response = client.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(instance_name="ci/linux", requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(a), data=a),
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b), data=zstandard.compress(b), compressor=ZSTD),
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b"right"), data=b"wrong"),
    ]), metadata=client.metadata)
    assert [r.status.code for r in response.responses] == [0, 0, grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert [r.digest for r in response.responses] == [digest(a), digest(b), digest(b"right")]
    assert "hash mismatch" in response.responses[2].status.message
    assert client.missing(a, b, instance="ci/linux") == []
    assert client.missing(a, instance="ci/mac") == [digest(a).hash]
    read = client.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(
        instance_name="ci/linux", digests=[digest(a), digest(b)], acceptable_compressors=[ZSTD]),
        metadata=client.metadata)
    assert [zstandard.decompress(r.data) for r in read.responses] == [a, b]
    assert all(r.compressor == ZSTD for r in read.responses)


def test_find_missing_names_each_missing_digest_once_in_request_order(client: CacheClient) -> None:
    stored, absent = [os.urandom(50) for _ in range(3)], [os.urandom(60) for _ in range(3)]
    client.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b), data=b) for b in stored]), metadata=client.metadata)
    asked = [absent[2], stored[0], absent[0], b"", absent[2], stored[1], absent[1], absent[0], stored[2]]
    assert client.missing(*asked) == [digest(b).hash for b in (absent[2], absent[0], absent[1])]


def test_batches_over_the_limit_are_refused(client: CacheClient) -> None:
    big = os.urandom(3 * 1024 * 1024)
    request = re_pb2.BatchUpdateBlobsRequest(requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(big), data=big),
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(big[:2_000_000]), data=big[:2_000_000])])
    err = rpc_error(lambda: client.cas.BatchUpdateBlobs(request, metadata=client.metadata))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_batch_total_size_bytes" in err.details()
    assert client.missing(big) == [digest(big).hash]
    huge = re_pb2.Digest(hash="a" * 64, size_bytes=5 * 1024 * 1024)
    assert code_of(lambda: client.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(digests=[huge]),
                                                     metadata=client.metadata)) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("bad", [
    re_pb2.Digest(hash="XYZ", size_bytes=1),
    re_pb2.Digest(hash="A" * 64, size_bytes=1),
    re_pb2.Digest(hash="a" * 64, size_bytes=-5),
])
def test_malformed_digests_are_invalid_argument(client: CacheClient, bad: re_pb2.Digest) -> None:
    request = re_pb2.FindMissingBlobsRequest(blob_digests=[bad])
    assert code_of(lambda: client.cas.FindMissingBlobs(request, metadata=client.metadata)) == \
        grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("instance", ["../escape", "/abs", "a//b", "a/../b", "x/blobs", "bad name"])
def test_bad_instance_names_are_refused(client: CacheClient, instance: str) -> None:
    err = rpc_error(lambda: client.missing(b"x", instance=instance))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_batch_compressor_and_digest_function(client: CacheClient) -> None:
    request = re_pb2.BatchUpdateBlobsRequest(requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b"q"), data=b"q",
                                               compressor=re_pb2.Compressor.Value.ValueType(3))])
    assert code_of(lambda: client.cas.BatchUpdateBlobs(request, metadata=client.metadata)) == \
        grpc.StatusCode.UNIMPLEMENTED
    md5 = re_pb2.FindMissingBlobsRequest(blob_digests=[digest(b"q")], digest_function=re_pb2.DigestFunction.Value.MD5)
    assert code_of(lambda: client.cas.FindMissingBlobs(md5, metadata=client.metadata)) == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_get_tree_walks_and_pages(client: CacheClient) -> None:
    leaf = re_pb2.Directory(files=[re_pb2.FileNode(name="f", digest=digest(b"leaf file"))])
    leaf2 = re_pb2.Directory(files=[re_pb2.FileNode(name="g", digest=digest(b"other file"))])
    mid = re_pb2.Directory(directories=[re_pb2.DirectoryNode(name="leaf", digest=digest(leaf.SerializeToString())),
                                        re_pb2.DirectoryNode(name="leaf2", digest=digest(leaf2.SerializeToString()))])
    root = re_pb2.Directory(directories=[re_pb2.DirectoryNode(name="mid", digest=digest(mid.SerializeToString()))])
    blobs = [d.SerializeToString() for d in (leaf, leaf2, mid, root)]
    client.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b), data=b) for b in blobs]), metadata=client.metadata)
    whole = list(client.cas.GetTree(re_pb2.GetTreeRequest(root_digest=digest(blobs[3])), metadata=client.metadata))
    assert [d for r in whole for d in r.directories] == [root, mid, leaf, leaf2]
    first = list(client.cas.GetTree(re_pb2.GetTreeRequest(root_digest=digest(blobs[3]), page_size=3),
                                    metadata=client.metadata))
    assert len(first) == 1 and list(first[0].directories) == [root, mid, leaf] and first[0].next_page_token
    rest = list(client.cas.GetTree(re_pb2.GetTreeRequest(root_digest=digest(blobs[3]), page_size=3,
                                                         page_token=first[0].next_page_token),
                                   metadata=client.metadata))
    assert list(rest[0].directories) == [leaf2] and not rest[0].next_page_token
    missing_root = re_pb2.GetTreeRequest(root_digest=digest(b"no such directory"))
    assert code_of(lambda: list(client.cas.GetTree(missing_root, metadata=client.metadata))) == \
        grpc.StatusCode.NOT_FOUND


# ----- ByteStream ----------------------------------------------------------------------------------

def test_bytestream_write_read_offsets_and_limits(client: CacheClient) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    assert client.upload(data, instance="main") == len(data)
    d = digest(data)
    assert client.download(d, instance="main") == data
    assert client.download(d, instance="main", offset=1_000_000, limit=777) == data[1_000_000:1_000_777]
    assert client.download(d, instance="main", offset=len(data)) == b""
    sizes = [len(r.data) for r in client.bytestream.Read(
        bs_pb2.ReadRequest(resource_name=f"main/blobs/{d.hash}/{d.size_bytes}"), metadata=client.metadata)]
    assert max(sizes) <= 256 * 1024 and sum(sizes) == len(data)
    for offset, limit, code in [(-1, 0, grpc.StatusCode.OUT_OF_RANGE), (len(data) + 1, 0, grpc.StatusCode.OUT_OF_RANGE),
                                (0, -1, grpc.StatusCode.INVALID_ARGUMENT)]:
        assert code_of(partial(client.download, d, instance="main", offset=offset, limit=limit)) == code


def test_zstd_upload_and_download(client: CacheClient) -> None:
    data = b"compressible " * 200_000
    compressed = zstandard.ZstdCompressor(level=5).compress(data)
    assert client.upload(data, compressed=compressed) == len(compressed)
    zstd_read = client.download(digest(data), compressed=True)
    assert zstandard.ZstdDecompressor().decompress(zstd_read) == data
    assert len(zstd_read) < len(data) // 20
    assert client.download(digest(data)) == data
    # an existing blob completes a compressed upload at once with committed_size -1
    assert client.upload(data, compressed=compressed) == -1
    assert client.upload(data) == len(data)
    d = digest(data)
    limited = bs_pb2.ReadRequest(resource_name=f"compressed-blobs/zstd/{d.hash}/{d.size_bytes}", read_limit=10)
    assert code_of(lambda: list(client.bytestream.Read(limited, metadata=client.metadata))) == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_wrong_data_is_refused_and_nothing_is_stored(client: CacheClient) -> None:
    data = os.urandom(100_000)
    d = digest(data)
    wrong = data[:-1] + bytes([data[-1] ^ 1])
    resource = f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"
    err = rpc_error(lambda: client.bytestream.Write(client.write_requests(wrong, resource), metadata=client.metadata))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hash mismatch" in err.details()
    short = f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"
    err = rpc_error(lambda: client.bytestream.Write(client.write_requests(data[:5000], short),
                                                    metadata=client.metadata))
    assert "size mismatch" in err.details()
    assert client.missing(data) == [d.hash]


@pytest.mark.parametrize("resource", [
    "uploads/blobs/{h}/{s}",
    "uploads/u1/blobs/{h}",
    "uploads/u1/blobs/{h}/notanumber",
    "uploads/u1/compressed-blobs/lz4/{h}/{s}",
    "../uploads/u1/blobs/{h}/{s}",
    "uploads/u1/blobs/md5/{h}/{s}",
    "nothing-here",
])
def test_malformed_write_resource_names(client: CacheClient, resource: str) -> None:
    d = digest(b"payload")
    name = resource.format(h=d.hash, s=d.size_bytes)
    code = code_of(lambda: client.bytestream.Write(client.write_requests(b"payload", name), metadata=client.metadata))
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)


def test_write_protocol_violations(client: CacheClient) -> None:
    data = os.urandom(50_000)
    d = digest(data)
    name = f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"

    def gap() -> Iterator[bs_pb2.WriteRequest]:
        yield bs_pb2.WriteRequest(resource_name=name, data=data[:1000])
        yield bs_pb2.WriteRequest(write_offset=2000, data=data[2000:], finish_write=True)

    def no_finish() -> Iterator[bs_pb2.WriteRequest]:
        yield bs_pb2.WriteRequest(resource_name=name, data=data)

    def resume() -> Iterator[bs_pb2.WriteRequest]:
        yield bs_pb2.WriteRequest(resource_name=name, write_offset=10, data=data[10:], finish_write=True)

    for requests in (gap, no_finish, resume):
        assert code_of(partial(client.bytestream.Write, requests(), metadata=client.metadata)) == \
            grpc.StatusCode.INVALID_ARGUMENT
    assert client.missing(data) == [d.hash]


def test_query_write_status(client: CacheClient) -> None:
    data = os.urandom(2048)
    d = digest(data)
    name = f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"
    status = client.bytestream.QueryWriteStatus(bs_pb2.QueryWriteStatusRequest(resource_name=name),
                                                metadata=client.metadata)
    assert (status.committed_size, status.complete) == (0, False)
    client.upload(data)
    status = client.bytestream.QueryWriteStatus(bs_pb2.QueryWriteStatusRequest(resource_name=name),
                                                metadata=client.metadata)
    assert (status.committed_size, status.complete) == (len(data), True)


def test_client_cancelling_mid_upload_leaves_no_blob_and_no_temp_file(client: CacheClient,
                                                                       server: StackServer) -> None:
    data = os.urandom(8 * 1024 * 1024)
    d = digest(data)
    name = f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"
    sent_half = threading.Event()

    def stalling() -> Iterator[bs_pb2.WriteRequest]:
        for request in client.write_requests(data, name, chunk=256 * 1024):
            if request.write_offset >= len(data) // 2:
                sent_half.set()
                time.sleep(30)
            yield request

    future = client.bytestream.Write.future(stalling(), metadata=client.metadata)
    assert sent_half.wait(10)
    time.sleep(0.5)
    future.cancel()
    tmp = server.settings.data_dir / "cas" / "tmp"
    deadline = time.monotonic() + 10
    while any(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp.iterdir()) == []
    assert client.missing(data) == [d.hash]


# ----- action cache --------------------------------------------------------------------------------

def test_action_results_round_trip_and_need_their_outputs(client: CacheClient, server: StackServer) -> None:
    out, log = os.urandom(500), b"stdout text"
    tree = re_pb2.Tree(root=re_pb2.Directory(files=[re_pb2.FileNode(name="x", digest=digest(b"in tree"))]))
    tree_blob = tree.SerializeToString()
    for blob in (out, log, b"in tree", tree_blob):
        client.upload(blob)
    result = re_pb2.ActionResult(
        exit_code=0, stdout_digest=digest(log),
        output_files=[re_pb2.OutputFile(path="out/a", digest=digest(out))],
        output_directories=[re_pb2.OutputDirectory(path="out/dir", tree_digest=digest(tree_blob))])
    action = digest(b"action " + os.urandom(8))
    client.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(action_digest=action, action_result=result),
                                 metadata=client.metadata)
    got = client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action), metadata=client.metadata)
    assert got == result
    # a blob inside an output directory's tree disappears: the result is no longer a hit
    gone = Digest(digest(b"in tree").hash, 7)
    assert server.call(lambda s: s.gateway.backends.blobs.cluster.delete(Scope("default"), gone))
    err = rpc_error(lambda: client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action),
                                                      metadata=client.metadata))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    client.upload(b"in tree")
    assert client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action),
                                     metadata=client.metadata) == result
    unknown = re_pb2.GetActionResultRequest(action_digest=digest(b"never run"))
    assert code_of(lambda: client.ac.GetActionResult(unknown, metadata=client.metadata)) == grpc.StatusCode.NOT_FOUND


def test_metrics_count_hits_misses_and_bytes(client: CacheClient, server: StackServer) -> None:
    import httpx

    def figures() -> dict[str, float]:
        text = httpx.get(f"{server.http_url}/metrics").text
        return {
            "miss": sample(text, "bbapi_gateway_cache_requests_total", cache="cas", result="miss", tenant="default"),
            "hit": sample(text, "bbapi_gateway_cache_requests_total", cache="cas", result="hit", tenant="default"),
            "streamed_in": sample(text, "bbapi_gateway_streamed_bytes_total", compression="identity", direction="in",
                                  tenant="default"),
            "written": sample(text, "bbapi_cas_written_bytes_total"),
            "writes_ok": sample(text, "bbapi_gateway_rpc_seconds_count", code="OK", method="ByteStream/Write"),
            "unauthenticated": sample(text, "bbapi_gateway_rpc_seconds_count", code="UNAUTHENTICATED",
                                      method="ContentAddressableStorage/FindMissingBlobs"),
            "stored": sample(text, "bbapi_cas_stored_bytes"),
        }

    before = figures()
    data = os.urandom(10_000)
    client.upload(data)
    client.missing(data, b"surely missing " + os.urandom(4))
    code_of(lambda: CacheClient(server.grpc_target, None).missing(b"x"))
    after = figures()
    delta = {name: after[name] - before[name] for name in before}
    assert delta == {"miss": 1, "hit": 1, "streamed_in": 10_000, "written": 10_000, "writes_ok": 1,
                     "unauthenticated": 1, "stored": 10_000}, delta
    assert httpx.get(f"{server.http_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.http_url}/readyz").json()["ready"] is True
