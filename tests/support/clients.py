"""Thin gRPC clients for tests, speaking to the public port exactly as Bazel would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from services.common.hashing import DigestFunction, hash_hex
from services.common.resources import function_segment
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from services.gen.google.bytestream import bytestream_pb2_grpc as bs_grpc

CHUNK = 16 * 1024  # Bazel's upload chunk size


SHA256 = DigestFunction.SHA256


def digest(data: bytes, function: DigestFunction = SHA256) -> re_pb2.Digest:
    return re_pb2.Digest(hash=hash_hex(function, data), size_bytes=len(data))


@dataclass
class CacheClient:
    target: str
    key: str | None
    invocation_id: str | None = None  # sent as REAPI RequestMetadata.tool_invocation_id on every call, as Bazel does
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.target, options=[("grpc.max_receive_message_length", -1)])
        self.cas = re_grpc.ContentAddressableStorageStub(self.channel)
        self.ac = re_grpc.ActionCacheStub(self.channel)
        self.caps = re_grpc.CapabilitiesStub(self.channel)
        self.bytestream = bs_grpc.ByteStreamStub(self.channel)

    @property
    def metadata(self) -> list[tuple[str, str | bytes]]:
        headers: list[tuple[str, str | bytes]] = [("x-buildbuddy-api-key", self.key)] if self.key else []
        if self.invocation_id is not None:
            tagged = re_pb2.RequestMetadata(tool_invocation_id=self.invocation_id, action_id="a" * 64,
                                            tool_details=re_pb2.ToolDetails(tool_name="bazel", tool_version="4.2.1"))
            headers.append(("build.bazel.remote.execution.v2.requestmetadata-bin", tagged.SerializeToString()))
        return headers

    def close(self) -> None:
        self.channel.close()

    def missing(self, *blobs: bytes, instance: str = "", function: DigestFunction = SHA256) -> list[str]:
        response = self.cas.FindMissingBlobs(
            re_pb2.FindMissingBlobsRequest(instance_name=instance, blob_digests=[digest(b, function) for b in blobs],
                                           digest_function=re_pb2.DigestFunction.Value.ValueType(function)),
            metadata=self.metadata)
        return [d.hash for d in response.missing_blob_digests]

    def write_requests(self, data: bytes, resource: str, chunk: int = CHUNK) -> Iterator[bs_pb2.WriteRequest]:
        offset = 0
        while True:
            piece = data[offset:offset + chunk]
            last = offset + len(piece) >= len(data)
            yield bs_pb2.WriteRequest(resource_name=resource if offset == 0 else "", write_offset=offset,
                                      data=piece, finish_write=last)
            offset += len(piece)
            if last:
                return

    def upload(self, data: bytes, instance: str = "", compressed: bytes | None = None,
               function: DigestFunction = SHA256) -> int:
        d = digest(data, function)
        prefix = f"{instance}/" if instance else ""
        kind = "compressed-blobs/zstd" if compressed is not None else "blobs"
        resource = f"{prefix}uploads/{uuid.uuid4()}/{kind}/{function_segment(function)}{d.hash}/{d.size_bytes}"
        payload = compressed if compressed is not None else data
        response = self.bytestream.Write(self.write_requests(payload, resource), metadata=self.metadata)
        return int(response.committed_size)

    def download(self, data_digest: re_pb2.Digest, instance: str = "", offset: int = 0, limit: int = 0,
                 compressed: bool = False, function: DigestFunction = SHA256) -> bytes:
        prefix = f"{instance}/" if instance else ""
        kind = "compressed-blobs/zstd" if compressed else "blobs"
        name = f"{prefix}{kind}/{function_segment(function)}{data_digest.hash}/{data_digest.size_bytes}"
        request = bs_pb2.ReadRequest(resource_name=name, read_offset=offset, read_limit=limit)
        return b"".join(r.data for r in self.bytestream.Read(request, metadata=self.metadata))
