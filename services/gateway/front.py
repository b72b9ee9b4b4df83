"""The public gRPC port: grpcio's threaded server in front of async servicers.

Why not grpc.aio here: Bazel before 5 sends the API key only as userinfo in the target
(`grpc://KEY@host`), which arrives as the HTTP/2 `:authority`, and only grpcio's threaded server
exposes it (grpc/grpc#38906; the aio accessor is not released). So each RPC runs in a server
thread that hands the work to the gateway's event loop, where the servicers are the same kind
of async objects the internal services use (see services.common.rpc).

Streams cross the thread boundary through bounded windows (WINDOW messages in flight per
direction), so memory per stream stays bounded and a slow client slows its producer down.
A client that cancels or disconnects cancels the async handler, whose cleanup then runs.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from services.common.auth import Capability, Principal
from services.common.errors import ApiError, Unauthenticated
from services.common.rpc import SERVER_OPTIONS, message_class, method_kind
from services.gateway import metrics

log = logging.getLogger(__name__)

WINDOW = 32
API_KEY_HEADER = "x-buildbuddy-api-key"


@dataclass
class CallContext:
    """What an async servicer method learns about its call."""

    method: str
    metadata: dict[str, str]
    authority: str
    peer: str
    principal: Principal | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def api_key(self) -> str | None:
        """The key from the x-buildbuddy-api-key header, else from userinfo in the authority."""
        key = self.metadata.get(API_KEY_HEADER, "").strip()
        if key:
            return key
        userinfo, at, _host = self.authority.rpartition("@")
        if at and userinfo:
            return userinfo.split(":", 1)[0].strip() or None
        return None

    def require(self, capability: Capability) -> Principal:
        if self.principal is None:
            raise Unauthenticated("missing API key: send the x-buildbuddy-api-key header "
                                  "(Bazel: --remote_header=x-buildbuddy-api-key=KEY)")
        self.principal.require(capability)
        return self.principal


Authenticate = Callable[[CallContext], Awaitable[None]]


class _Closed(Exception):
    pass


class _Inbox:
    """Requests from a server thread to the async handler, at most WINDOW in flight."""

    _END = object()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.credits = threading.Semaphore(WINDOW)
        self.closed = False
        self.finished = False

    def put(self, item: Any) -> bool:
        while not self.credits.acquire(timeout=1.0):
            if self.closed:
                return False
        if self.closed:
            return False
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        return True

    def finish(self) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, self._END)

    def close(self) -> None:
        self.closed = True
        self.credits.release(WINDOW)

    def __aiter__(self) -> _Inbox:
        return self

    async def __anext__(self) -> Any:
        if self.finished:
            raise StopAsyncIteration
        item = await self.queue.get()
        self.credits.release()
        if item is self._END:
            self.finished = True
            raise StopAsyncIteration
        return item


class _Outbox:
    """Responses from the async handler to a server thread, at most WINDOW in flight."""

    _END = object()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.credits = threading.Semaphore(WINDOW)
        self.closed = False

    async def pump(self, responses: AsyncIterator[Any]) -> None:
        try:
            async for item in responses:
                if not self.credits.acquire(blocking=False):
                    await self.loop.run_in_executor(None, self._wait_credit)
                if self.closed:
                    raise _Closed
                self.queue.put(item)
        except BaseException as err:
            self.queue.put(_Failure(err))
            raise
        self.queue.put(self._END)

    def _wait_credit(self) -> None:
        while not self.credits.acquire(timeout=1.0):
            if self.closed:
                return

    def close(self) -> None:
        self.closed = True
        self.credits.release(WINDOW)

    def drain(self) -> Iterator[Any]:
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            if isinstance(item, _Failure):
                raise item.error
            self.credits.release()
            yield item


@dataclass
class _Failure:
    error: BaseException


class Front:
    """Serves async servicers on a threaded grpc.Server and authenticates every call."""

    def __init__(self, loop: asyncio.AbstractEventLoop, authenticate: Authenticate, max_workers: int = 256) -> None:
        self.loop = loop
        self.authenticate = authenticate
        self.max_workers = max_workers
        self._pumps = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="front-pump")
        self._handlers: list[grpc.GenericRpcHandler] = []

    def add(self, service: ServiceDescriptor, servicer: object, aliases: Sequence[str] = ()) -> None:
        handlers = {}
        for method in service.methods:
            kind = method_kind(method)
            impl = getattr(servicer, method.name)
            factory = getattr(grpc, f"{kind}_rpc_method_handler")
            adapter = getattr(self, f"_{kind}")
            handlers[method.name] = factory(
                _bind(adapter, impl, f"{service.name}/{method.name}"),
                request_deserializer=message_class(method.input_type).FromString,
                response_serializer=message_class(method.output_type).SerializeToString,
            )
        for name in (service.full_name, *aliases):
            self._handlers.append(grpc.method_handlers_generic_handler(name, handlers))

    def server(self) -> grpc.Server:
        server = grpc.server(ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="front"),
                             options=SERVER_OPTIONS, maximum_concurrent_rpcs=None)
        server.add_generic_rpc_handlers(tuple(self._handlers))
        return server

    def shutdown(self) -> None:
        self._pumps.shutdown(wait=False, cancel_futures=True)

    # ----- per-call plumbing ------------------------------------------------------------------

    @staticmethod
    def _context(grpc_context: grpc.ServicerContext, method: str) -> CallContext:
        metadata = {m.key: m.value for m in grpc_context.invocation_metadata() if isinstance(m.value, str)}
        return CallContext(method=method, metadata=metadata, authority=authority_of(grpc_context),
                           peer=grpc_context.peer())

    async def _unary_call(self, impl: Callable[..., Awaitable[Any]], request: Any, ctx: CallContext) -> Any:
        await self.authenticate(ctx)
        return await impl(request, ctx)

    async def _stream_call(self, impl: Callable[..., AsyncIterator[Any]], request: Any,
                           ctx: CallContext) -> AsyncIterator[Any]:
        await self.authenticate(ctx)
        async for response in impl(request, ctx):
            yield response

    def _submit(self, coro: Any, grpc_context: grpc.ServicerContext, *closers: Any) -> Future[Any]:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)

        def on_done() -> None:
            future.cancel()
            for closer in closers:
                closer.close()
        grpc_context.add_callback(on_done)
        for closer in closers:
            if isinstance(closer, _Inbox):
                future.add_done_callback(_closing(closer))
        return future

    def _unary_unary(self, impl: Any, name: str, request: Any, grpc_context: grpc.ServicerContext) -> Any:
        ctx = self._context(grpc_context, name)
        with _Outcome(grpc_context, name):
            return self._submit(self._unary_call(impl, request, ctx), grpc_context).result()

    def _unary_stream(self, impl: Any, name: str, request: Any, grpc_context: grpc.ServicerContext) -> Iterator[Any]:
        ctx = self._context(grpc_context, name)
        outbox = _Outbox(self.loop)
        with _Outcome(grpc_context, name):
            self._submit(outbox.pump(self._stream_call(impl, request, ctx)), grpc_context, outbox)
            yield from outbox.drain()

    def _stream_unary(self, impl: Any, name: str, requests: Iterator[Any], grpc_context: grpc.ServicerContext) -> Any:
        ctx = self._context(grpc_context, name)
        inbox = _Inbox(self.loop)
        with _Outcome(grpc_context, name):
            future = self._submit(self._unary_call(impl, inbox, ctx), grpc_context, inbox)
            _feed(requests, inbox, future)
            return future.result()

    def _stream_stream(self, impl: Any, name: str, requests: Iterator[Any],
                       grpc_context: grpc.ServicerContext) -> Iterator[Any]:
        ctx = self._context(grpc_context, name)
        inbox = _Inbox(self.loop)
        outbox = _Outbox(self.loop)
        with _Outcome(grpc_context, name):
            future = self._submit(outbox.pump(self._stream_call(impl, inbox, ctx)), grpc_context, inbox, outbox)
            self._pumps.submit(_feed, requests, inbox, future)
            yield from outbox.drain()


def _bind(adapter: Callable[..., Any], impl: Any, name: str) -> Callable[..., Any]:
    def handler(request: Any, grpc_context: grpc.ServicerContext) -> Any:
        return adapter(impl, name, request, grpc_context)
    return handler


def _closing(inbox: _Inbox) -> Callable[[Future[Any]], None]:
    def close(_future: Future[Any]) -> None:
        inbox.close()
    return close


def _feed(requests: Iterator[Any], inbox: _Inbox, future: Future[Any]) -> None:
    """Move client messages into the inbox until the client half-closes or the handler is done."""
    try:
        for request in requests:
            if future.done() or not inbox.put(request):
                return
    except grpc.RpcError:
        inbox.close()  # the client went away; the callback cancels the handler
        return
    inbox.finish()


class _Outcome:
    """Maps what escaped the handler to a status, and records latency by method and code."""

    def __init__(self, grpc_context: grpc.ServicerContext, method: str) -> None:
        self.grpc_context = grpc_context
        self.method = method
        self.start = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, _tb: Any) -> None:
        code = grpc.StatusCode.OK
        message = ""
        if err is None or isinstance(err, GeneratorExit):
            pass
        elif isinstance(err, ApiError):
            code, message = err.code, err.message
        elif isinstance(err, (asyncio.CancelledError, _Closed)) or type(err).__name__ == "CancelledError":
            code, message = grpc.StatusCode.CANCELLED, "call cancelled"
        elif isinstance(err, Exception) and not isinstance(err, grpc.RpcError):
            log.error("unexpected error in %s", self.method, exc_info=err)
            code, message = grpc.StatusCode.INTERNAL, f"internal error in {self.method}: {type(err).__name__}"
        metrics.RPC_LATENCY.labels(self.method, code.name).observe(time.perf_counter() - self.start)
        if code is not grpc.StatusCode.OK:
            self.grpc_context.abort(code, message)  # raises, replacing the original exception


def authority_of(grpc_context: grpc.ServicerContext) -> str:
    """The HTTP/2 :authority of the call (grpcio keeps it in the call details)."""
    event = getattr(grpc_context, "_rpc_event", None)
    host = getattr(getattr(event, "call_details", None), "host", b"")
    return host.decode("utf-8", "replace") if isinstance(host, bytes) else str(host or "")
