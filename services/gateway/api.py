"""BuildBuddy's api.v1.ApiService at the edge, shared by the gRPC and the HTTP transports.

Each method authorises the caller and scopes the call to the caller's tenant, then asks the
service that owns the data: metadata (invocations, targets, actions, audit), logs, or the CAS
stack (files). The same servicer object serves gRPC (through the Front) and HTTP (through
services.gateway.http_api), so both transports answer identically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from services.blobstore.access import BlobAccess, Kind
from services.common import invocation_ids, wire
from services.common.auth import Capability
from services.common.errors import InvalidArgument, Unimplemented, internal
from services.common.resources import function_segment
from services.common.rpc import Codec
from services.gateway import files
from services.gateway.front import CallContext
from services.gen.api.v1 import (
    action_pb2,
    api_key_pb2,
    audit_log_pb2,
    file_pb2,
    invocation_pb2,
    log_pb2,
    remote_runner_pb2,
    target_pb2,
    workflow_pb2,
)
from services.gen.bbapi.internal.v1 import logs_pb2, logs_pb2_grpc, metadata_pb2, metadata_pb2_grpc

MAX_FILE_RANGE = 16 * 1024 * 1024


def encode_file_chunk(data: bytes) -> bytes:
    """GetFileResponse{data}, framed by hand like every bulk message (services.common.wire)."""
    return wire.bytes_field(1, data)


CODECS = {"GetFile": Codec(response_serializer=encode_file_chunk)}

Selecting = TypeVar("Selecting", invocation_pb2.GetInvocationRequest, target_pb2.GetTargetRequest,
                    action_pb2.GetActionRequest, log_pb2.GetLogRequest)


def canonical_selector(request: Selecting) -> Selecting:
    """Every method reads an invocation id the same way (any UUID spelling) and answers, echoes and
    binds page tokens to its canonical form; an id that is no UUID passes through and reads as missing."""
    if request.selector.invocation_id:
        request.selector.invocation_id = invocation_ids.normalised(request.selector.invocation_id)
    return request


@dataclass
class ApiServicer:
    metadata: metadata_pb2_grpc.MetadataStub
    logs: logs_pb2_grpc.LogsStub
    blobs: BlobAccess

    # ----- invocations, targets, actions, logs -------------------------------------------------

    async def GetInvocation(self, request: invocation_pb2.GetInvocationRequest,
                            ctx: CallContext) -> invocation_pb2.GetInvocationResponse:
        tenant = ctx.require(Capability.READ).tenant
        return await internal(self.metadata.GetInvocation(
            metadata_pb2.TenantGetInvocationRequest(tenant=tenant, request=canonical_selector(request))))

    async def GetTarget(self, request: target_pb2.GetTargetRequest, ctx: CallContext) -> target_pb2.GetTargetResponse:
        tenant = ctx.require(Capability.READ).tenant
        return await internal(self.metadata.GetTarget(
            metadata_pb2.TenantGetTargetRequest(tenant=tenant, request=canonical_selector(request))))

    async def GetAction(self, request: action_pb2.GetActionRequest, ctx: CallContext) -> action_pb2.GetActionResponse:
        tenant = ctx.require(Capability.READ).tenant
        return await internal(self.metadata.GetAction(
            metadata_pb2.TenantGetActionRequest(tenant=tenant, request=canonical_selector(request))))

    async def GetLog(self, request: log_pb2.GetLogRequest, ctx: CallContext) -> log_pb2.GetLogResponse:
        tenant = ctx.require(Capability.READ).tenant
        return await internal(self.logs.GetLog(logs_pb2.TenantGetLogRequest(tenant=tenant,
                                                                          request=canonical_selector(request))))

    # ----- files -------------------------------------------------------------------------------

    async def GetFile(self, request: file_pb2.GetFileRequest, ctx: CallContext) -> AsyncIterator[bytes]:
        """The blob's bytes (a zstd stream for compressed-blobs URIs; the ActionResult for AC URIs).

        Yields raw data: gRPC frames each piece as a GetFileResponse (CODECS), HTTP sends it as is.
        """
        file = files.resolve(ctx.require(Capability.READ), request.uri)
        # blocks go out as the shard sends them (1 MiB): BuildBuddy's GetFile messages are ~4 MB
        async for block in files.read(self.blobs, file):
            yield block

    async def GetFileRange(self, request: file_pb2.GetFileRangeRequest,
                           ctx: CallContext) -> file_pb2.GetFileRangeResponse:
        file = files.resolve(ctx.require(Capability.READ), request.uri)
        if file.size is None:
            raise InvalidArgument("GetFileRange reads uncompressed CAS blobs (.../blobs/<hash>/<size>)")
        if request.start < 0 or 0 < request.end < request.start:
            raise InvalidArgument(f"range [{request.start}, {request.end}) is invalid: 0 <= start <= end")
        start = min(request.start, file.size)  # a range may run past the blob's end: what is there of it is read
        end = min(request.end, file.size) if request.end > 0 else file.size
        if end - start > MAX_FILE_RANGE:
            raise InvalidArgument(f"range of {end - start} bytes exceeds the limit of {MAX_FILE_RANGE}")
        if end == start:  # read() takes limit 0 as "to the end": an empty range reads nothing
            await files.check_stored(self.blobs, file)
            return file_pb2.GetFileRangeResponse()
        chunks = [c async for c in files.read(self.blobs, file, start, end - start)]
        return file_pb2.GetFileRangeResponse(data=b"".join(chunks))

    async def DeleteFile(self, request: file_pb2.DeleteFileRequest, ctx: CallContext) -> file_pb2.DeleteFileResponse:
        """Deletes a CAS blob or an action result; deleting what is absent succeeds. Audited."""
        principal = ctx.require(Capability.CACHE_WRITE)
        file = files.resolve(principal, request.uri)
        scope, parsed, digest = file.scope, file.uri, file.digest
        if parsed.kind is Kind.AC:
            existed = await self.blobs.delete_action_result(scope, digest)
        else:
            existed = await self.blobs.delete(scope, digest)
        await internal(self.metadata.RecordAudit(metadata_pb2.AuditRecord(
            tenant=principal.tenant, key_id=principal.key_id, action="DeleteFile",
            resource=f"{parsed.kind.value}:{parsed.resource.instance_name}/"
                     f"{function_segment(parsed.resource.function)}{digest}",
            detail="deleted" if existed else "absent")))
        return file_pb2.DeleteFileResponse()

    async def GetAuditLog(self, request: audit_log_pb2.GetAuditLogRequest,
                          ctx: CallContext) -> audit_log_pb2.GetAuditLogResponse:
        tenant = ctx.require(Capability.ADMIN).tenant
        return await internal(self.metadata.GetAuditLog(
            metadata_pb2.TenantGetAuditLogRequest(tenant=tenant, request=request)))

    # ----- what a self-hosted server does not run ----------------------------------------------

    async def ExecuteWorkflow(self, request: workflow_pb2.ExecuteWorkflowRequest,
                              ctx: CallContext) -> workflow_pb2.ExecuteWorkflowResponse:
        raise Unimplemented("ExecuteWorkflow is not available: bbapi does not run CI workflows")

    async def Run(self, request: remote_runner_pb2.RunRequest, ctx: CallContext) -> remote_runner_pb2.RunResponse:
        raise Unimplemented("Run is not available: bbapi does not run remote Bazel commands")

    async def CreateUserApiKey(self, request: api_key_pb2.CreateUserApiKeyRequest,
                               ctx: CallContext) -> api_key_pb2.CreateUserApiKeyResponse:
        raise Unimplemented("CreateUserApiKey is not available: bbapi has no users; "
                            "create keys with `bbapi keys create --tenant NAME`")
