"""The logs service's internal gRPC API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from services.common.errors import InvalidArgument
from services.gen.api.v1 import log_pb2
from services.gen.bbapi.internal.v1 import logs_pb2
from services.logs.store import LogStore


class LogsServicer:
    def __init__(self, store: LogStore) -> None:
        self.store = store

    async def Append(self, requests: AsyncIterator[logs_pb2.AppendRequest],
                     context: Any) -> AsyncIterator[logs_pb2.AppendResponse]:
        first = await anext(requests, None)
        if first is None or first.WhichOneof("kind") != "open":
            raise InvalidArgument("the first Append message must open a log")
        writer = await self.store.open(first.open.tenant, first.open.invocation_id)
        yield logs_pb2.AppendResponse(last_sequence=writer.last_sequence)
        async for request in requests:
            if request.WhichOneof("kind") == "entries":
                last = await writer.append([(e.sequence_number, e.text) for e in request.entries.entries])
            elif request.WhichOneof("kind") == "finish":
                await writer.finish()
                last = writer.last_sequence
            else:
                raise InvalidArgument("a log can be opened only once per stream")
            yield logs_pb2.AppendResponse(last_sequence=last)

    async def GetLog(self, request: logs_pb2.TenantGetLogRequest, context: Any) -> log_pb2.GetLogResponse:
        return await self.store.get_log(request.tenant, request.request)
