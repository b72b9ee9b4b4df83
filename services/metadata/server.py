"""The metadata service's internal gRPC API: keys, build-event ingestion, API queries, audit, cache statistics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from services.common.auth import Principal
from services.common.db import Sessions
from services.common.errors import InvalidArgument
from services.gen.api.v1 import action_pb2, audit_log_pb2, invocation_pb2, target_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2
from services.metadata import audit, keys
from services.metadata.insights import cache_stats
from services.metadata.insights import methods as insights
from services.metadata.invocations import builds, queries
from services.metadata.invocations.ingest import InvocationStore

log = logging.getLogger(__name__)


def _principal_response(principal: Principal | None, revoked: bool = False) -> metadata_pb2.ResolveApiKeyResponse:
    if principal is None:
        return metadata_pb2.ResolveApiKeyResponse(found=False, revoked=revoked)
    return metadata_pb2.ResolveApiKeyResponse(found=True, tenant=principal.tenant,
                                              capability=principal.capability.value, key_id=principal.key_id)


class MetadataServicer:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.invocations = InvocationStore(sessions)

    async def ResolveApiKey(self, request: metadata_pb2.ResolveApiKeyRequest,
                            context: Any) -> metadata_pb2.ResolveApiKeyResponse:
        principal = await keys.resolve(self.sessions, request.key_hash)
        revoked = principal is None and await keys.is_revoked(self.sessions, request.key_hash)
        return _principal_response(principal, revoked)

    async def ResolveBuild(self, request: metadata_pb2.ResolveBuildRequest,
                           context: Any) -> metadata_pb2.ResolveApiKeyResponse:
        return _principal_response(await builds.principal_of_build(self.sessions, request.invocation_id,
                                                                   request.build_id_hash))

    async def Ingest(self, requests: AsyncIterator[metadata_pb2.IngestRequest],
                     context: Any) -> AsyncIterator[metadata_pb2.IngestResponse]:
        """Store one stream's events, answering each message once it is committed.

        A stream that ends without `finish` (the client broke off) leaves the invocation
        DISCONNECTED, ready for Bazel's retry to resume it.
        """
        first = await anext(requests, None)
        if first is None or first.WhichOneof("kind") != "open":
            raise InvalidArgument("the first Ingest message must open an invocation")
        opened = first.open
        stream = await self.invocations.open(opened.tenant, opened.invocation_id, opened.key_id, list(opened.secrets),
                                             opened.build_id_hash)
        yield metadata_pb2.IngestResponse(last_sequence=stream.last_sequence)
        finished = False
        try:
            async for request in requests:
                kind = request.WhichOneof("kind")
                if kind == "events":
                    last = await stream.append([(e.sequence_number, e.build_event) for e in request.events.events])
                    yield metadata_pb2.IngestResponse(last_sequence=last)
                elif kind == "finish":
                    status = await stream.finish()
                    finished = True
                    yield metadata_pb2.IngestResponse(last_sequence=stream.last_sequence, status=status)
                else:
                    raise InvalidArgument("an invocation can be opened only once per stream")
        finally:
            if not finished:
                await asyncio.shield(stream.disconnect())

    async def GetInvocation(self, request: metadata_pb2.TenantGetInvocationRequest,
                            context: Any) -> invocation_pb2.GetInvocationResponse:
        return await queries.get_invocations(self.sessions, request.tenant, request.request)

    async def GetTarget(self, request: metadata_pb2.TenantGetTargetRequest,
                        context: Any) -> target_pb2.GetTargetResponse:
        return await queries.get_targets(self.sessions, request.tenant, request.request)

    async def GetAction(self, request: metadata_pb2.TenantGetActionRequest,
                        context: Any) -> action_pb2.GetActionResponse:
        return await queries.get_actions(self.sessions, request.tenant, request.request)

    async def RecordAudit(self, request: metadata_pb2.AuditRecord, context: Any) -> metadata_pb2.AuditRecorded:
        await audit.record(self.sessions, request)
        return metadata_pb2.AuditRecorded()

    async def GetAuditLog(self, request: metadata_pb2.TenantGetAuditLogRequest,
                          context: Any) -> audit_log_pb2.GetAuditLogResponse:
        return await audit.entries(self.sessions, request.tenant, request.request)

    async def Insight(self, request: metadata_pb2.TenantInsightRequest, context: Any) -> metadata_pb2.InsightResponse:
        return await insights.answer(self.sessions, request)

    async def RecordCacheStats(self, request: metadata_pb2.RecordCacheStatsRequest,
                               context: Any) -> metadata_pb2.CacheStatsRecorded:
        await cache_stats.record(self.sessions, request.deltas)
        return metadata_pb2.CacheStatsRecorded()
