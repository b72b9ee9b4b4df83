"""The ceiling the cache benches compare with: a bare grpc.aio server answering from memory.

    python bench/bare.py [--size-mib 64]    # prints its port, serves until killed

ByteStream reads return one random blob of SIZE, or a blob of up to 8 MiB written before; larger
writes are counted and dropped. The action cache keeps results in a dict. The CAS keeps
batch-uploaded blobs in a dict, answers FindMissingBlobs and BatchReadBlobs from it, and checks
nothing: no digests, no disk, no tenants. The Build Event Service acknowledges every event as it
arrives and keeps nothing: what a build with `--bes_backend` costs Bazel itself. Whatever bbapi
costs beyond this is bbapi's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from services.gen.build.bazel.semver import semver_pb2
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from services.gen.google.bytestream import bytestream_pb2_grpc as bs_grpc
from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2_grpc as pbe_grpc
from services.gen.google.rpc import status_pb2

CHUNK_READ = 256 * 1024 - 1024
KEEP = 8 * 1024 * 1024
OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


class ByteStream(bs_grpc.ByteStreamServicer):
    def __init__(self, blob: bytes, blobs: dict[str, bytes]) -> None:
        self.blob = blob
        self.blobs = blobs  # the CAS's: small uploads are kept, so a replayed build reads them back

    async def Read(self, request: bs_pb2.ReadRequest, context: object) -> AsyncIterator[bs_pb2.ReadResponse]:
        parts = request.resource_name.split("/")  # .../blobs/<hash>/<size>; any other name reads the random blob
        blob = self.blobs.get(parts[-2], self.blob) if len(parts) > 1 else self.blob
        view = memoryview(blob)
        for start in range(0, len(blob), CHUNK_READ):
            yield bs_pb2.ReadResponse(data=bytes(view[start:start + CHUNK_READ]))

    async def Write(self, requests: AsyncIterator[bs_pb2.WriteRequest], context: object) -> bs_pb2.WriteResponse:
        received, kept, name = 0, [], ""
        async for request in requests:
            name = name or request.resource_name
            received += len(request.data)
            if received <= KEEP:
                kept.append(request.data)
        if received <= KEEP:
            self.blobs[name.split("/")[-2]] = b"".join(kept)
        return bs_pb2.WriteResponse(committed_size=received)

    async def QueryWriteStatus(self, request: bs_pb2.QueryWriteStatusRequest,
                               context: object) -> bs_pb2.QueryWriteStatusResponse:
        return bs_pb2.QueryWriteStatusResponse()


class Cas(re_grpc.ContentAddressableStorageServicer):
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def FindMissingBlobs(self, request: re_pb2.FindMissingBlobsRequest,
                               context: object) -> re_pb2.FindMissingBlobsResponse:
        return re_pb2.FindMissingBlobsResponse(
            missing_blob_digests=[d for d in request.blob_digests if d.hash not in self.blobs])

    async def BatchUpdateBlobs(self, request: re_pb2.BatchUpdateBlobsRequest,
                               context: object) -> re_pb2.BatchUpdateBlobsResponse:
        responses = []
        for blob in request.requests:
            self.blobs[blob.digest.hash] = blob.data
            responses.append(re_pb2.BatchUpdateBlobsResponse.Response(digest=blob.digest))
        return re_pb2.BatchUpdateBlobsResponse(responses=responses)

    async def BatchReadBlobs(self, request: re_pb2.BatchReadBlobsRequest,
                             context: object) -> re_pb2.BatchReadBlobsResponse:
        return re_pb2.BatchReadBlobsResponse(responses=[
            re_pb2.BatchReadBlobsResponse.Response(digest=d, data=self.blobs[d.hash]) if d.hash in self.blobs
            else re_pb2.BatchReadBlobsResponse.Response(digest=d, status=status_pb2.Status(code=5))
            for d in request.digests])


class ActionCache(re_grpc.ActionCacheServicer):
    def __init__(self) -> None:
        self.results: dict[str, re_pb2.ActionResult] = {}

    async def GetActionResult(self, request: re_pb2.GetActionResultRequest,
                              context: grpc.aio.ServicerContext[Any, Any]) -> re_pb2.ActionResult:
        result = self.results.get(request.action_digest.hash)
        if result is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no result")
        return result

    async def UpdateActionResult(self, request: re_pb2.UpdateActionResultRequest,
                                 context: object) -> re_pb2.ActionResult:
        self.results[request.action_digest.hash] = request.action_result
        return request.action_result


class Capabilities(re_grpc.CapabilitiesServicer):
    async def GetCapabilities(self, request: re_pb2.GetCapabilitiesRequest,
                              context: object) -> re_pb2.ServerCapabilities:
        return re_pb2.ServerCapabilities(
            cache_capabilities=re_pb2.CacheCapabilities(
                digest_functions=[re_pb2.DigestFunction.Value.SHA256],
                action_cache_update_capabilities=re_pb2.ActionCacheUpdateCapabilities(update_enabled=True),
                max_batch_total_size_bytes=4 * 1024 * 1024,
                symlink_absolute_path_strategy=re_pb2.SymlinkAbsolutePathStrategy.Value.ALLOWED),
            low_api_version=semver_pb2.SemVer(major=2), high_api_version=semver_pb2.SemVer(major=2, minor=3))


class BuildEvents(pbe_grpc.PublishBuildEventServicer):
    async def PublishLifecycleEvent(self, request: pbe_pb2.PublishLifecycleEventRequest,
                                    context: object) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    async def PublishBuildToolEventStream(
            self, requests: AsyncIterator[pbe_pb2.PublishBuildToolEventStreamRequest],
            context: object) -> AsyncIterator[pbe_pb2.PublishBuildToolEventStreamResponse]:
        async for request in requests:
            event = request.ordered_build_event
            yield pbe_pb2.PublishBuildToolEventStreamResponse(stream_id=event.stream_id,
                                                              sequence_number=event.sequence_number)


async def serve(size: int) -> None:
    server = grpc.aio.server(options=OPTIONS)
    cas = Cas()
    bs_grpc.add_ByteStreamServicer_to_server(ByteStream(os.urandom(size), cas.blobs), server)
    re_grpc.add_ContentAddressableStorageServicer_to_server(cas, server)  # type: ignore[abstract]  # no GetTree
    re_grpc.add_ActionCacheServicer_to_server(ActionCache(), server)
    pbe_grpc.add_PublishBuildEventServicer_to_server(BuildEvents(), server)
    re_grpc.add_CapabilitiesServicer_to_server(Capabilities(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


def start(size_mib: int = 1) -> tuple[subprocess.Popen[str], str]:
    """The bare server in its own process (as every server under test is); (process, host:port)."""
    proc = subprocess.Popen([sys.executable, __file__, "--size-mib", str(size_mib)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"127.0.0.1:{int(proc.stdout.readline())}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    asyncio.run(serve(parser.parse_args().size_mib * 1024 * 1024))


if __name__ == "__main__":
    main()
