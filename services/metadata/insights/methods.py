"""The InsightsService methods the metadata service answers: one line each, name to domain function."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import DecodeError, Message

from services.common.db import Sessions
from services.common.errors import InvalidArgument, Unimplemented
from services.common.rpc import message_class
from services.gen.bbapi.api.v1 import insights_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2
from services.metadata.insights import cache_stats, flaky, history, search

SERVICE = insights_pb2.DESCRIPTOR.services_by_name["InsightsService"]
Method = Callable[[Sessions, str, Any], Awaitable[Message]]

METHODS: dict[str, Method] = {
    "SearchInvocations": search.search_invocations,
    "GetTargetHistory": history.get_target_history,
    "GetFlakyTests": flaky.get_flaky_tests,
    "GetCacheStats": cache_stats.get_cache_stats,
}


async def answer(sessions: Sessions, call: metadata_pb2.TenantInsightRequest) -> metadata_pb2.InsightResponse:
    """Decode the forwarded request by the method's descriptor, run its function for the tenant, encode."""
    method, function = SERVICE.methods_by_name.get(call.method), METHODS.get(call.method)
    if method is None or function is None:
        raise Unimplemented(f"InsightsService method {call.method!r} is not served by the metadata service")
    try:
        request = message_class(method.input_type).FromString(call.request)
    except DecodeError:
        raise InvalidArgument(f"cannot decode the {method.input_type.name}") from None
    response = await function(sessions, call.tenant, request)
    return metadata_pb2.InsightResponse(response=response.SerializeToString())
