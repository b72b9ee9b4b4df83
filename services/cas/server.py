"""The CAS shard's internal gRPC service: a thin translation onto its BlobAccess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from services.blobstore.access import BatchItem, BlobAccess, Scope
from services.blobstore.remote import codec
from services.blobstore.remote.codec import WriteMessage, key_out, scope_in
from services.common.convert import compressor_in, compressor_out, digest_in, digest_out, digests_in, status_out
from services.common.errors import InvalidArgument
from services.common.resources import Digest
from services.common.rpc import Codec, passthrough
from services.gen.bbapi.internal.v1 import cas_pb2

LIST_BATCH = 1000
CODECS = {"Read": Codec(response_serializer=passthrough),
          "Write": Codec(request_deserializer=codec.decode_write)}

Context = Any  # grpc.aio.ServicerContext


class CasShardServicer:
    def __init__(self, store: BlobAccess) -> None:
        self.store = store

    async def FindMissing(self, request: cas_pb2.FindMissingRequest, context: Context) -> cas_pb2.FindMissingResponse:
        scope = scope_in(request.scope)
        missing = await self.store.find_missing(scope, digests_in(request.digests, scope.function))
        return cas_pb2.FindMissingResponse(missing=[digest_out(d) for d in missing])

    async def Read(self, request: cas_pb2.ReadRequest, context: Context) -> AsyncIterator[bytes]:
        scope = scope_in(request.scope)
        stream = self.store.read(scope, digest_in(request.digest, scope.function), request.offset,
                                 request.limit, compressor_in(request.compressor))
        async for data in stream:
            yield codec.encode_read(data)

    async def Write(self, requests: AsyncIterator[WriteMessage], context: Context) -> cas_pb2.WriteResponse:
        first = await anext(requests, None)
        header = first.header if first is not None else None
        if first is None or header is None or not header.HasField("digest"):
            raise InvalidArgument("the first write message must name the digest")

        async def data() -> AsyncIterator[bytes]:
            if first.data:
                yield first.data
            async for request in requests:
                yield request.data

        scope = scope_in(header.scope)
        existed = await self.store.write(scope, digest_in(header.digest, scope.function), data(),
                                         compressor_in(header.compressor))
        return cas_pb2.WriteResponse(already_existed=existed)

    async def BatchRead(self, request: cas_pb2.BatchReadRequest, context: Context) -> cas_pb2.BatchReadResponse:
        compressor = compressor_in(request.compressor)
        scope = scope_in(request.scope)
        results = await self.store.batch_read(scope, digests_in(request.digests, scope.function),
                                              compressor)
        return cas_pb2.BatchReadResponse(blobs=[
            cas_pb2.BlobData(digest=digest_out(r.digest), data=r.data, compressor=compressor_out(compressor),
                             status=status_out(r.error))
            for r in results])

    async def BatchWrite(self, request: cas_pb2.BatchWriteRequest, context: Context) -> cas_pb2.BatchWriteResponse:
        scope = scope_in(request.scope)
        items = [BatchItem(digest_in(b.digest, scope.function), b.data, compressor_in(b.compressor))
                 for b in request.blobs]
        results = await self.store.batch_write(scope, items)
        return cas_pb2.BatchWriteResponse(results=[
            cas_pb2.BlobData(digest=digest_out(r.digest), status=status_out(r.error), already_existed=r.existed)
            for r in results])

    async def Delete(self, request: cas_pb2.DeleteRequest, context: Context) -> cas_pb2.DeleteResponse:
        scope = scope_in(request.scope)
        existed = await self.store.delete(scope, digest_in(request.digest, scope.function))
        return cas_pb2.DeleteResponse(existed=existed)

    async def GetActionResult(self, request: cas_pb2.ActionKey, context: Context) -> cas_pb2.ActionResultBlob:
        data = await self.store.get_action_result(*_action_key(request))
        return cas_pb2.ActionResultBlob(action_result=data)

    async def PutActionResult(self, request: cas_pb2.PutActionResultRequest,
                              context: Context) -> cas_pb2.PutActionResultResponse:
        await self.store.put_action_result(*_action_key(request.key), request.action_result)
        return cas_pb2.PutActionResultResponse()

    async def DeleteActionResult(self, request: cas_pb2.ActionKey, context: Context) -> cas_pb2.DeleteResponse:
        existed = await self.store.delete_action_result(*_action_key(request))
        return cas_pb2.DeleteResponse(existed=existed)

    async def ListKeys(self, request: cas_pb2.ListKeysRequest,
                       context: Context) -> AsyncIterator[cas_pb2.ListKeysResponse]:
        batch: list[cas_pb2.StoredKey] = []
        async for key in self.store.list_keys():
            batch.append(key_out(key))
            if len(batch) >= LIST_BATCH:
                yield cas_pb2.ListKeysResponse(keys=batch)
                batch = []
        if batch:
            yield cas_pb2.ListKeysResponse(keys=batch)


def _action_key(message: cas_pb2.ActionKey) -> tuple[Scope, Digest]:
    scope = scope_in(message.scope)
    return scope, digest_in(message.action_digest, scope.function)
