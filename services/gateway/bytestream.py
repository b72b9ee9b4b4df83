"""google.bytestream.ByteStream for CAS blobs: Read, Write and QueryWriteStatus.

Writes are acknowledged only after the shard has verified and durably stored the blob. An
upload of a blob that already exists completes at once (committed_size is the blob's size, or
-1 for a compressed upload, as REAPI specifies). Partial uploads are not kept, so an interrupted
upload restarts at offset 0 (QueryWriteStatus reports 0 for anything not complete).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.blobstore.access import BlobAccess
from services.blobstore.streams import STREAM_CHUNK
from services.common import wire
from services.common.auth import Capability
from services.common.errors import InvalidArgument, NotFound, OutOfRange
from services.common.resources import BlobResource, Compressor, parse_read_resource, parse_write_resource
from services.common.rpc import Codec, passthrough
from services.gateway import metrics
from services.gateway.cache import scope_for
from services.gateway.front import CallContext
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2


def _compression(resource: BlobResource) -> str:
    return resource.compressor.name.lower()


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """google.bytestream.WriteRequest, decoded without protobuf (services.common.wire)."""

    resource_name: str = ""
    write_offset: int = 0
    finish_write: bool = False
    data: bytes = b""


def decode_write_request(raw: bytes) -> WriteChunk:
    values: dict[int, int | memoryview] = dict(wire.fields(raw))
    name, offset, finish, data = (values.get(n) for n in (1, 2, 3, 10))
    return WriteChunk(bytes(name).decode() if isinstance(name, memoryview) else "",
                      wire.int64(offset) if isinstance(offset, int) else 0,
                      bool(finish) if isinstance(finish, int) else False,
                      bytes(data) if isinstance(data, memoryview) else b"")


def encode_read_response(data: bytes | memoryview) -> bytes:
    return wire.bytes_field(10, data)


CODECS = {"Write": Codec(request_deserializer=decode_write_request),
          "Read": Codec(response_serializer=passthrough)}


@dataclass
class ByteStreamServicer:
    blobs: BlobAccess

    async def Read(self, request: bs_pb2.ReadRequest, ctx: CallContext) -> AsyncIterator[bytes]:
        resource = parse_read_resource(request.resource_name)
        scope = scope_for(ctx, Capability.READ, resource.instance_name, resource.function)
        if request.read_offset < 0 or request.read_offset > resource.digest.size:
            raise OutOfRange(f"read_offset {request.read_offset} is outside the blob (size {resource.digest.size})")
        if request.read_limit < 0:
            raise InvalidArgument(f"read_limit {request.read_limit} is negative")
        if resource.compressor is not Compressor.IDENTITY and request.read_limit:
            raise InvalidArgument("read_limit must be 0 when reading compressed-blobs")
        counter = metrics.streamed_bytes(scope.tenant, "out", _compression(resource))
        stream = self.blobs.read(scope, resource.digest, request.read_offset, request.read_limit,
                                 resource.compressor)
        sent = 0
        try:
            async for block in stream:
                counter.inc(len(block))
                sent += len(block)
                view = memoryview(block)  # the framing join is the one copy of each piece
                for start in range(0, len(block), STREAM_CHUNK):
                    yield encode_read_response(view[start:start + STREAM_CHUNK])
        except NotFound:
            ctx.count("cas_download_misses")
            raise
        finally:
            ctx.count("cas_download_bytes", sent)
        ctx.count("cas_downloads")

    async def Write(self, requests: AsyncIterator[WriteChunk], ctx: CallContext) -> bs_pb2.WriteResponse:
        first = await anext(requests, None)
        if first is None:
            raise InvalidArgument("empty write stream")
        resource = parse_write_resource(first.resource_name)
        scope = scope_for(ctx, Capability.CAS_WRITE, resource.instance_name, resource.function)
        if first.write_offset != 0:
            raise InvalidArgument(f"write_offset {first.write_offset}: this server does not resume partial "
                                  "uploads; QueryWriteStatus reports 0, start again from 0")
        received = 0
        counter = metrics.streamed_bytes(scope.tenant, "in", _compression(resource))

        async def data() -> AsyncIterator[bytes]:
            nonlocal received
            request: WriteChunk | None = first
            while request is not None:
                if request.resource_name and request.resource_name != first.resource_name:
                    raise InvalidArgument("resource_name changed in the middle of a write")
                if request.write_offset != received:
                    raise InvalidArgument(f"write_offset {request.write_offset} does not follow the "
                                          f"{received} bytes received so far")
                received += len(request.data)
                counter.inc(len(request.data))
                if request.data:
                    yield request.data
                if request.finish_write:
                    if await anext(requests, None) is not None:
                        raise InvalidArgument("data sent after finish_write")
                    return
                request = await anext(requests, None)
            raise InvalidArgument(f"the client ended the write after {received} bytes without finish_write")

        # a blob that already exists completes at once: write() returns True without reading the data
        existed = await self.blobs.write(scope, resource.digest, data(), resource.compressor)
        ctx.count("cas_uploads")
        ctx.count("cas_upload_bytes", received)
        if existed:
            compressed = resource.compressor is not Compressor.IDENTITY
            return bs_pb2.WriteResponse(committed_size=-1 if compressed else resource.digest.size)
        return bs_pb2.WriteResponse(committed_size=received)

    async def QueryWriteStatus(self, request: bs_pb2.QueryWriteStatusRequest,
                               ctx: CallContext) -> bs_pb2.QueryWriteStatusResponse:
        resource = parse_write_resource(request.resource_name)
        scope = scope_for(ctx, Capability.READ, resource.instance_name, resource.function)
        complete = not await self.blobs.find_missing(scope, [resource.digest])
        return bs_pb2.QueryWriteStatusResponse(committed_size=resource.digest.size if complete else 0,
                                               complete=complete)
