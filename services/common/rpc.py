"""gRPC plumbing shared by the internal services: serving servicers, channels, error mapping.

A servicer is a plain object with one `async def` per RPC, named as in the proto, taking
`(request, context)` (a request iterator for client streaming) and returning the response (or
an async iterator of responses). `serve_servicer` builds the grpc.aio handlers from the proto's
service descriptor, so there is no generated base class to inherit and one place maps
`ApiError` to a status and logs what escaped unexpectedly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import telemetry
from services.common.errors import ApiError

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # A restarted service (same address) is found again within a second, not after minutes of backoff.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
]


def message_class(descriptor: Any) -> Any:
    return message_factory.GetMessageClass(descriptor)


def method_kind(method: MethodDescriptor) -> str:
    return {(False, False): "unary_unary", (False, True): "unary_stream",
            (True, False): "stream_unary", (True, True): "stream_stream"}[
        (method.client_streaming, method.server_streaming)]


def status_of(err: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status a handler's exception becomes: an ApiError keeps its code, anything else is
    logged and becomes INTERNAL."""
    if isinstance(err, ApiError):
        return err.code, err.message
    log.error("unexpected error in %s", method, exc_info=err)
    return grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(err).__name__}"


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: BaseException, method: str) -> None:
    await context.abort(*status_of(err, method))


def _wrap(kind: str, impl: Callable[..., Any], name: str) -> Callable[..., Any]:
    if kind in ("unary_unary", "stream_unary"):
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await impl(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as err:
                await _abort(context, err, name)
        return unary

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for response in impl(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await _abort(context, err, name)
    return streaming


@dataclass(frozen=True)
class Codec:
    """Replaces protobuf for one method's bulk messages (see services.common.wire)."""

    request_deserializer: Callable[[bytes], Any] | None = None
    response_serializer: Callable[[Any], bytes] | None = None


def passthrough(message: bytes) -> bytes:
    """Serializer for responses a servicer already encoded."""
    return message


def serializers(method: MethodDescriptor, codec: Codec | None) -> dict[str, Callable[..., Any]]:
    codec = codec or Codec()
    return {
        "request_deserializer": codec.request_deserializer or message_class(method.input_type).FromString,
        "response_serializer": codec.response_serializer or message_class(method.output_type).SerializeToString,
    }


def serve_servicer(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object,
                   codecs: Mapping[str, Codec] | None = None) -> None:
    """Register `servicer`'s methods for `service` on an aio server."""
    handlers = method_handlers(service, servicer, lambda kind, impl, method: _wrap(kind, impl, method.full_name),
                               codecs)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


Wrap = Callable[[str, Callable[..., Any], MethodDescriptor], Callable[..., Any]]


def method_handlers(service: ServiceDescriptor, servicer: object, wrap: Wrap,
                    codecs: Mapping[str, Codec] | None = None) -> dict[str, grpc.RpcMethodHandler]:
    """grpc handlers for every method of `service`: `wrap(kind, servicer method, descriptor)` each."""
    handlers = {}
    for method in service.methods:
        kind = method_kind(method)
        factory = getattr(grpc, f"{kind}_rpc_method_handler")
        handlers[method.name] = factory(wrap(kind, getattr(servicer, method.name), method),
                                        **serializers(method, (codecs or {}).get(method.name)))
    return handlers


def insecure_channel(target: str, extra_options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    """A channel to an internal service. A comma-separated target, or a `dns:///` name (e.g. a
    headless Service with one address per pod), balances calls over its replicas."""
    options = [*CHANNEL_OPTIONS, *(extra_options or [])]
    if "," in target or target.startswith("dns:///"):
        options.append(("grpc.lb_policy_name", "round_robin"))
    return grpc.aio.insecure_channel(target, options=options, interceptors=telemetry.client_interceptors())


async def serving(channel: grpc.aio.Channel, seconds: float) -> bool:
    """Whether the server behind `channel` answers its gRPC health check with SERVING."""
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=seconds)
    except grpc.aio.AioRpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def new_server(share_port: bool = False) -> grpc.aio.Server:
    """grpc binds with SO_REUSEPORT unless told not to. Only the gateways' public port is shared;
    an internal server that found its port taken must fail, not split another's connections."""
    options = [*SERVER_OPTIONS, ("grpc.so_reuseport", int(share_port))]
    return grpc.aio.server(options=options, interceptors=telemetry.server_interceptors())
