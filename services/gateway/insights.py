"""bbapi.api.v1.InsightsService at the edge: every method, authorised and forwarded, none written out.

A method's rpc names the capability it needs (`required_capability`, READ when unset); the gateway
checks the caller's key against it and forwards the request as it came, with the caller's tenant, to
the metadata service's one Insight RPC, which dispatches by name (services.metadata.insights.methods).
Adding a method is its rpc, its domain function and its registration line there.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from services.common.auth import Capability
from services.common.errors import internal
from services.common.rpc import message_class
from services.gateway.front import CallContext
from services.gen.bbapi.api.v1 import insights_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2, metadata_pb2_grpc

SERVICE = insights_pb2.DESCRIPTOR.services_by_name["InsightsService"]
Handler = Callable[[Message, CallContext], Awaitable[Message]]


def required_capability(method: MethodDescriptor) -> Capability:
    value = method.GetOptions().Extensions[insights_pb2.required_capability]
    return Capability(value) if value else Capability.READ


class InsightsServicer:
    """One handler per InsightsService method (looked up by name, as the transports do)."""

    def __init__(self, metadata: metadata_pb2_grpc.MetadataStub) -> None:
        self.metadata = metadata

    def __getattr__(self, name: str) -> Handler:
        method = SERVICE.methods_by_name.get(name)
        if method is None:
            raise AttributeError(name)
        return functools.partial(self._forward, method)

    async def _forward(self, method: MethodDescriptor, request: Message, ctx: CallContext) -> Message:
        tenant = ctx.require(required_capability(method)).tenant
        answer = await internal(self.metadata.Insight(metadata_pb2.TenantInsightRequest(
            tenant=tenant, method=method.name, request=request.SerializeToString())))
        response: Message = message_class(method.output_type).FromString(answer.response)
        return response
