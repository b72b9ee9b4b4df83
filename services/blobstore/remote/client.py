"""`remote`: a BlobAccess that is one CAS shard, reached over the internal gRPC contract.

Errors come back as the class of their status code (services.common.errors.from_rpc_error), so
the layers above cannot tell a remote shard from an in-process one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc

from services.blobstore.access import BatchItem, BatchResult, BlobAccess, Key, Scope
from services.blobstore.remote import codec
from services.blobstore.remote.batcher import Batcher
from services.blobstore.remote.codec import key_in, scope_out
from services.blobstore.streams import gather
from services.common.convert import compressor_out, digest_in, digest_out, digests_in, status_in
from services.common.errors import ApiError, from_rpc_error, internal
from services.common.resources import Compressor, Digest
from services.common.rpc import insecure_channel, passthrough, serving
from services.gen.bbapi.internal.v1 import cas_pb2, cas_pb2_grpc

HEALTH_TIMEOUT = 1.0
BATCH_TIMEOUT = 30.0
# Whole reads and writes of blobs up to this size join the batch calls of their shard
# (services.blobstore.remote.batcher): most of a build's blobs are small, and many move at once.
WHOLE = 1024 * 1024


class RemoteBlobAccess(BlobAccess):
    def __init__(self, target: str, channel: grpc.aio.Channel | None = None) -> None:
        self.target = target
        self.channel = channel or insecure_channel(target)
        self.stub = cas_pb2_grpc.CasShardStub(self.channel)
        # the bulk calls bypass protobuf for their data messages (services.common.wire)
        self._read = self.channel.unary_stream(codec.READ_PATH,
                                               request_serializer=cas_pb2.ReadRequest.SerializeToString,
                                               response_deserializer=codec.decode_read)
        self._write = self.channel.stream_unary(codec.WRITE_PATH, request_serializer=passthrough,
                                                response_deserializer=cas_pb2.WriteResponse.FromString)
        self._reads: Batcher[tuple[Scope, Compressor], Digest, BatchResult] = Batcher(
            lambda key, digests: self.batch_read(key[0], digests, key[1]), lambda digest: digest.size, BATCH_TIMEOUT)
        self._writes: Batcher[Scope, BatchItem, BatchResult] = Batcher(
            self.batch_write, lambda item: len(item.data), BATCH_TIMEOUT)

    def __repr__(self) -> str:
        return f"RemoteBlobAccess({self.target})"

    async def ready(self) -> bool:
        return await serving(self.channel, HEALTH_TIMEOUT)

    async def close(self) -> None:
        await self._reads.close()
        await self._writes.close()
        await self.channel.close()

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        request = cas_pb2.FindMissingRequest(scope=scope_out(scope), digests=[digest_out(d) for d in digests])
        response: cas_pb2.FindMissingResponse = await internal(self.stub.FindMissing(request))
        return digests_in(response.missing, scope.function)

    async def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
                   compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        if digest.size <= WHOLE and offset == 0 and limit == 0:
            result = await self._reads.submit((scope, compressor), digest)
            if result.error is not None:
                raise result.error
            if result.data:
                yield result.data
            return
        call = self._read(cas_pb2.ReadRequest(scope=scope_out(scope), digest=digest_out(digest), offset=offset,
                                              limit=limit, compressor=compressor_out(compressor)))
        try:
            async for data in call:
                yield data
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        if digest.size <= WHOLE:
            data = await gather(chunks, digest, compressor)
            result = await self._writes.submit(scope, BatchItem(digest, data, compressor))
            if result.error is not None:
                raise result.error
            return result.existed
        failure: list[BaseException] = []

        async def requests() -> AsyncIterator[bytes]:
            yield cas_pb2.WriteRequest(scope=scope_out(scope), digest=digest_out(digest),
                                       compressor=compressor_out(compressor)).SerializeToString()
            try:
                async for block in chunks:  # large blocks already: the cluster tier coalesces uploads
                    yield codec.encode_write_data(block)
            except BaseException as err:
                failure.append(err)  # grpc turns a failing request iterator into a bare cancellation
                raise

        try:
            response: cas_pb2.WriteResponse = await internal(self._write(requests()))
        except (ApiError, asyncio.CancelledError):
            if failure and isinstance(failure[0], Exception):  # not a cancellation or generator close
                raise failure[0] from None
            raise
        return response.already_existed

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        request = cas_pb2.BatchReadRequest(scope=scope_out(scope), digests=[digest_out(d) for d in digests],
                                           compressor=compressor_out(compressor))
        response: cas_pb2.BatchReadResponse = await internal(self.stub.BatchRead(request))
        return [BatchResult(digest_in(b.digest, scope.function), b.data, status_in(b.status)) for b in response.blobs]

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        request = cas_pb2.BatchWriteRequest(scope=scope_out(scope), blobs=[
            cas_pb2.BlobData(digest=digest_out(i.digest), data=i.data, compressor=compressor_out(i.compressor))
            for i in items])
        response: cas_pb2.BatchWriteResponse = await internal(self.stub.BatchWrite(request))
        return [BatchResult(digest_in(r.digest, scope.function), error=status_in(r.status), existed=r.already_existed)
                for r in response.results]

    async def delete(self, scope: Scope, digest: Digest) -> bool:
        request = cas_pb2.DeleteRequest(scope=scope_out(scope), digest=digest_out(digest))
        response: cas_pb2.DeleteResponse = await internal(self.stub.Delete(request))
        return response.existed

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        response: cas_pb2.ActionResultBlob = await internal(self.stub.GetActionResult(_action_key(scope, action)))
        return response.action_result

    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        await internal(self.stub.PutActionResult(cas_pb2.PutActionResultRequest(key=_action_key(scope, action),
                                                                           action_result=result)))

    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        response: cas_pb2.DeleteResponse = await internal(self.stub.DeleteActionResult(_action_key(scope, action)))
        return response.existed

    async def list_keys(self) -> AsyncIterator[Key]:
        try:
            async for response in self.stub.ListKeys(cas_pb2.ListKeysRequest()):
                for key in response.keys:
                    yield key_in(key)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None


def _action_key(scope: Scope, action: Digest) -> cas_pb2.ActionKey:
    return cas_pb2.ActionKey(scope=scope_out(scope), action_digest=digest_out(action))
