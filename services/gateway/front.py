"""The public gRPC port: async servicers on grpc.aio, each call authenticated and measured.

Servicers are plain objects with one `async def` per RPC (as in services.common.rpc) that get
a `CallContext` instead of grpc's context: the caller's metadata, `:authority` and, once
`authenticate` ran, the principal. The API key may come from the `x-buildbuddy-api-key`
header, from `authorization: Bearer KEY` or `authorization: x-buildbuddy-api-key KEY` (the
forms BuildBuddy's HTTP API also takes), or from userinfo in the target (`grpc://KEY@host`,
Bazel 4), which arrives in `:authority` (see services.gateway.authority).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from services.common.auth import Capability, Principal
from services.common.errors import Unauthenticated
from services.common.exclusive import bind_grpc
from services.common.rpc import Codec, method_handlers, new_server, passthrough, status_of
from services.gateway import metrics
from services.gateway.authority import AuthorityReader

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-buildbuddy-api-key"
REQUEST_METADATA_HEADER = "build.bazel.remote.execution.v2.requestmetadata-bin"
AUTHORIZATION_SCHEMES = ("bearer", API_KEY_HEADER)  # `authorization: <scheme> KEY`, scheme case-insensitive
CALIBRATION_METHOD = "/bbapi.Calibrate/Probe"  # short enough to be stored inline by grpc
CALIBRATION_AUTHORITY = "calibration@bbapi.invalid"


@dataclass
class CallContext:
    """What an async servicer method learns about its call."""

    metadata: dict[str, str]
    authority: str = ""  # read only when the call carries no key header: it is where Bazel 4 puts the key
    principal: Principal | None = None
    request_metadata: bytes = b""  # REAPI RequestMetadata as sent: names the invocation a cache call is for
    counts: dict[str, int] | None = None  # what the call did for its invocation (services.gateway.cache_stats)

    def count(self, stat: str, amount: int = 1) -> None:
        """Add to a bbapi.api.v1.CacheStats counter of the invocation the call names (if it names one)."""
        if self.request_metadata:
            if self.counts is None:
                self.counts = {}
            self.counts[stat] = self.counts.get(stat, 0) + amount

    def api_key(self) -> str | None:
        """The key from the x-buildbuddy-api-key header, else the authorization header, else userinfo."""
        key = self.metadata.get(API_KEY_HEADER, "").strip()
        if key:
            return key
        scheme, _, credentials = self.metadata.get("authorization", "").strip().partition(" ")
        if scheme.lower() in AUTHORIZATION_SCHEMES and credentials.strip():
            return credentials.strip()
        userinfo, at, _host = self.authority.rpartition("@")
        if at and userinfo:
            return userinfo.split(":", 1)[0].strip() or None
        return None

    def require(self, capability: Capability) -> Principal:
        if self.principal is None:
            raise Unauthenticated("missing API key: send the x-buildbuddy-api-key header or "
                                  "`authorization: Bearer KEY` (Bazel: --remote_header=x-buildbuddy-api-key=KEY)")
        self.principal.require(capability)
        return self.principal


Authenticate = Callable[[CallContext], Awaitable[None]]
Observe = Callable[[CallContext, str, float], None]  # (call, "Service/Method", perf_counter at its start)
Context = Any  # grpc.aio.ServicerContext


class Front:
    """Serves async servicers on the public grpc.aio server and authenticates every call."""

    def __init__(self, authenticate: Authenticate, observe: Observe | None = None) -> None:
        """`observe` sees every call that ended and carried RequestMetadata (cache statistics)."""
        self.authenticate = authenticate
        self.observe = observe
        self.authority = AuthorityReader()
        self._handlers: list[grpc.GenericRpcHandler] = [self._calibration_handler()]
        self._server: grpc.aio.Server | None = None

    def add(self, service: ServiceDescriptor, servicer: object, aliases: Sequence[str] = (),
            codecs: Mapping[str, Codec] | None = None) -> None:
        def wrap(kind: str, impl: Callable[..., Any], method: MethodDescriptor) -> Callable[..., Any]:
            return getattr(self, f"_{kind}")(impl, f"{service.name}/{method.name}")  # type: ignore[no-any-return]

        handlers = method_handlers(service, servicer, wrap, codecs)
        for name in (service.full_name, *aliases):
            self._handlers.append(grpc.method_handlers_generic_handler(name, handlers))

    async def start(self, host: str, port: int, credentials: grpc.ServerCredentials | None = None,
                    share_port: bool = False) -> int:
        """Listen on `host:port`, over TLS when given `credentials`; `share_port` lets the gateways
        of one `bbapi cluster` bind the same port (SO_REUSEPORT), anything else finding it taken fails."""
        server = new_server(share_port=share_port)
        server.add_generic_rpc_handlers(tuple(self._handlers))
        bound = bind_grpc(server, host, port, "--grpc-port", credentials, share_port)
        # a private port for the :authority self-test: the public one may be shared (SO_REUSEPORT)
        # with other gateway processes, and the test must reach this one
        private: int = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        await self._calibrate(private)
        return bound

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)

    # ----- :authority calibration ------------------------------------------------------------

    def _calibration_handler(self) -> grpc.GenericRpcHandler:
        async def probe(request: bytes, context: Context) -> bytes:
            ok = self.authority.calibrate(context, CALIBRATION_METHOD, CALIBRATION_AUTHORITY)
            return b"1" if ok else b"0"

        service, _, method = CALIBRATION_METHOD.strip("/").partition("/")
        handler = grpc.unary_unary_rpc_method_handler(probe, request_deserializer=passthrough,
                                                      response_serializer=passthrough)
        return grpc.method_handlers_generic_handler(service, {method: handler})

    async def _calibrate(self, port: int) -> None:
        options = [("grpc.default_authority", CALIBRATION_AUTHORITY)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            call = channel.unary_unary(CALIBRATION_METHOD, request_serializer=passthrough,
                                       response_deserializer=passthrough)
            ok = await call(b"", timeout=10)
        if ok != b"1":
            log.warning("cannot read :authority from this grpcio build: API keys given as "
                        "grpc://KEY@host (Bazel 4) are not recognised; use the x-buildbuddy-api-key header")

    # ----- per-call plumbing ------------------------------------------------------------------

    def _context(self, context: Context) -> CallContext:
        metadata: dict[str, str] = {}
        request_metadata = b""
        for key, value in context.invocation_metadata() or ():
            if isinstance(value, str):
                metadata[key] = value
            elif key == REQUEST_METADATA_HEADER:
                request_metadata = value
        ctx = CallContext(metadata, request_metadata=request_metadata)
        if not ctx.api_key():
            ctx.authority = self.authority.read(context)
        return ctx

    def _ended(self, ctx: CallContext, name: str, start: float) -> None:
        if ctx.request_metadata and self.observe is not None:
            self.observe(ctx, name, start)

    def _unary_unary(self, impl: Callable[..., Awaitable[Any]], name: str) -> Callable[..., Awaitable[Any]]:
        async def handler(request: Any, context: Context) -> Any:
            start, ctx = time.perf_counter(), self._context(context)
            try:
                await self.authenticate(ctx)
                response = await impl(request, ctx)
            except asyncio.CancelledError:
                _record(name, start, grpc.StatusCode.CANCELLED)
                raise
            except Exception as err:
                await _fail(context, name, start, err)
            finally:
                self._ended(ctx, name, start)
            _record(name, start, grpc.StatusCode.OK)
            return response
        return handler

    _stream_unary = _unary_unary

    def _unary_stream(self, impl: Callable[..., AsyncIterator[Any]], name: str) -> Callable[..., AsyncIterator[Any]]:
        async def handler(request: Any, context: Context) -> AsyncIterator[Any]:
            start, ctx = time.perf_counter(), self._context(context)
            try:
                await self.authenticate(ctx)
                async for response in impl(request, ctx):
                    yield response
            except asyncio.CancelledError:
                _record(name, start, grpc.StatusCode.CANCELLED)
                raise
            except Exception as err:
                await _fail(context, name, start, err)
            finally:
                self._ended(ctx, name, start)
            _record(name, start, grpc.StatusCode.OK)
        return handler

    _stream_stream = _unary_stream


def _record(method: str, start: float, code: grpc.StatusCode) -> None:
    metrics.RPC_LATENCY.labels(method, code.name).observe(time.perf_counter() - start)


async def _fail(context: Context, method: str, start: float, err: Exception) -> None:
    """Turn what escaped a handler into a status (ApiError keeps its code; anything else is INTERNAL)."""
    if isinstance(err, grpc.aio.AbortError):
        raise err
    code, message = status_of(err, method)
    _record(method, start, code)
    await context.abort(code, message)
