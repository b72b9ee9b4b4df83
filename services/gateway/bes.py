"""Build Event Service (google.devtools.build.v1.PublishBuildEvent) at the public edge.

One Bazel stream becomes two internal streams: every event goes to the metadata service, the
console text of Progress events to the logs service. Bazel gets an acknowledgement for a
sequence number only when both services have durably stored everything up to it.

- **Group commit.** Events travel in batches: what arrives within `linger` of the oldest waiting
  event, or while earlier batches are being committed, goes out together. Bazel waits for acks
  only at the end of a build, so a few milliseconds of delay per event cost it nothing, while a
  transaction per trickled event costs CPU the build itself needs. The stream's end
  (ComponentStreamFinished or the half-close) is sent at once.
- **Outages.** A backend that cannot be reached (a process restarting) is re-opened with backoff
  for up to `retry_seconds`; on re-opening it says what it has stored, and the gateway sends the
  rest again from its buffer. Bazel's stream stays open meanwhile; nothing is acked twice or lost.
- **Keys.** The API key may arrive with the call (header or target userinfo) or only inside the
  build's options text (`--remote_header=x-buildbuddy-api-key=KEY`): until it is known, events are
  held back (at most PREAUTH_EVENTS). A retry that starts after the options carries no key; it is
  let in as the same build only if it presents the BES build_id the invocation was opened with
  (kept by the metadata service, so any gateway replica can check it). Anything else without a key
  is UNAUTHENTICATED.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from services.common.auth import Capability, Principal
from services.common.bep_keys import find_api_key, needs_redaction, redact_text
from services.common.errors import ApiError, InvalidArgument, Unauthenticated, from_rpc_error, internal
from services.gateway import metrics
from services.gateway.auth import KeyResolver
from services.gateway.bes_backends import Backend, Item, build_id_hash, entries_request, events_request, log_text
from services.gateway.bes_options import BesOptions
from services.gateway.front import CallContext
from services.gateway.retry import Outage, retrying
from services.gen.bbapi.internal.v1 import logs_pb2, logs_pb2_grpc, metadata_pb2, metadata_pb2_grpc
from services.gen.build_event_stream import build_event_stream_pb2 as bep_pb2
from services.gen.google.devtools.build.v1 import build_events_pb2 as be_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2

BAZEL_EVENT_TYPE = "type.googleapis.com/build_event_stream.BuildEvent"
PREAUTH_EVENTS = 100
BATCH_EVENTS = 1000
MAX_IN_FLIGHT = 2
MAX_PENDING_EVENTS = 5000
_OPTIONS_PAYLOADS = {"started", "options_parsed"}
Requests = AsyncIterator[pbe_pb2.PublishBuildToolEventStreamRequest]
Responses = AsyncIterator[pbe_pb2.PublishBuildToolEventStreamResponse]
log = logging.getLogger(__name__)


@dataclass
class BesStream:
    """One PublishBuildToolEventStream call."""

    ctx: CallContext
    metadata: metadata_pb2_grpc.MetadataStub
    logs: logs_pb2_grpc.LogsStub
    resolver: KeyResolver
    options: BesOptions
    stream_id: be_pb2.StreamId | None = None
    next_sequence: int | None = None
    finished: int | None = None  # sequence of ComponentStreamFinished
    items: collections.deque[Item] = field(default_factory=collections.deque)  # not yet stored by every backend
    base: int = 0  # the sequence just before items[0]: stored by every backend
    received: int = 0  # the last sequence read from Bazel
    half_closed: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    outbox: asyncio.Queue[pbe_pb2.PublishBuildToolEventStreamResponse | None] = field(
        default_factory=asyncio.Queue)
    backends: list[Backend] = field(default_factory=list)
    acked: int = 0
    secrets: list[str] = field(default_factory=list)

    # ----- Bazel's side ------------------------------------------------------------------------

    def _check(self, request: pbe_pb2.PublishBuildToolEventStreamRequest) -> pbe_pb2.OrderedBuildEvent:
        ordered = request.ordered_build_event
        if self.finished is not None:
            raise InvalidArgument("events after the stream's ComponentStreamFinished event")
        if self.stream_id is None:
            if not ordered.stream_id.invocation_id:
                raise InvalidArgument("stream_id.invocation_id is required")
            self.stream_id = ordered.stream_id
            self.acked = self.base = self.received = ordered.sequence_number - 1
        elif ordered.stream_id != self.stream_id:
            raise InvalidArgument("stream_id changed in the middle of a stream")
        if self.next_sequence is not None and ordered.sequence_number != self.next_sequence:
            raise InvalidArgument(f"sequence number {ordered.sequence_number} does not follow "
                                  f"{self.next_sequence - 1}")
        if ordered.sequence_number < 1:
            raise InvalidArgument(f"sequence number {ordered.sequence_number} is not positive")
        self.next_sequence = ordered.sequence_number + 1
        return ordered

    @staticmethod
    def _payload(ordered: pbe_pb2.OrderedBuildEvent) -> bytes | None:
        """The BuildEvent bytes, or None for the stream's final ComponentStreamFinished."""
        kind = ordered.event.WhichOneof("event")
        if kind == "component_stream_finished":
            return None
        if kind != "bazel_event":
            raise InvalidArgument(f"event {ordered.sequence_number} has no bazel_event (it is {kind or 'empty'})")
        if ordered.event.bazel_event.type_url != BAZEL_EVENT_TYPE:
            raise InvalidArgument(f"event {ordered.sequence_number}: bazel_event holds "
                                  f"{ordered.event.bazel_event.type_url!r}, not {BAZEL_EVENT_TYPE}")
        return ordered.event.bazel_event.value

    async def _authenticate(self, requests: Requests,
                            held: list[pbe_pb2.OrderedBuildEvent]) -> Principal:
        """The stream's principal: from the call, else from the options text of the build, else (a retry that
        starts after the options) from the build_id the invocation was opened with."""
        if self.ctx.principal is not None:
            return self.ctx.principal
        async for request in requests:
            ordered = self._check(request)
            held.append(ordered)
            if len(held) == 1 and ordered.sequence_number > 1 and (bound := await self._bound_principal()):
                return bound
            payload = self._payload(ordered)
            if payload is None:
                break
            try:
                event = bep_pb2.BuildEvent.FromString(payload)
            except DecodeError:
                raise InvalidArgument(f"event {ordered.sequence_number} is not a decodable BuildEvent") from None
            key = find_api_key(event)
            if key:
                self.secrets.append(key)
                return await retrying("metadata", self.options.retry_seconds, partial(self.resolver.resolve, key))
            if event.WhichOneof("payload") in _OPTIONS_PAYLOADS or len(held) >= PREAUTH_EVENTS:
                break
        if self.stream_id is not None and (bound := await self._bound_principal()):
            return bound
        if self.options.allow_anonymous:
            return Principal("anonymous", Capability.READ, "anonymous")
        raise Unauthenticated("no API key: send x-buildbuddy-api-key as a header, as "
                              "--bes_backend=grpc://KEY@host, or with --remote_header=x-buildbuddy-api-key=KEY")

    async def _bound_principal(self) -> Principal | None:
        """Who opened this invocation with this stream's build_id (a retry of the same build), if anyone."""
        assert self.stream_id is not None
        request = metadata_pb2.ResolveBuildRequest(invocation_id=self.stream_id.invocation_id,
                                                   build_id_hash=build_id_hash(self.stream_id))
        if not request.build_id_hash:
            return None
        found = await retrying("metadata", self.options.retry_seconds,
                               lambda: internal(self.metadata.ResolveBuild(request)))
        return Principal(found.tenant, Capability(found.capability), found.key_id) if found.found else None

    async def _enqueue(self, ordered: pbe_pb2.OrderedBuildEvent) -> None:
        payload = self._payload(ordered)
        if payload is None:
            self.finished = ordered.sequence_number
            async with self.changed:
                self.changed.notify_all()
            return
        try:
            text = log_text(payload)
        except DecodeError:
            raise InvalidArgument(f"event {ordered.sequence_number} is not a decodable BuildEvent") from None
        if text and needs_redaction(text, self.secrets):
            text = redact_text(text.decode("utf-8", "replace"), self.secrets).encode()
        async with self.changed:
            if len(self.items) >= MAX_PENDING_EVENTS:  # the services are behind: slow Bazel down
                await self.changed.wait_for(lambda: len(self.items) < MAX_PENDING_EVENTS)
            self.received = ordered.sequence_number
            if self.received <= min(b.durable for b in self.backends):  # re-sent, and stored everywhere
                self.base = self.received
                self._acknowledge_nowait()
            else:
                self.items.append(Item(ordered.sequence_number, payload, text, time.perf_counter()))
            if any(self.received - b.sent in (1, BATCH_EVENTS) for b in self.backends):
                self.changed.notify_all()  # a batch to start or a full one; a lingering shipper has its deadline

    async def _read(self, requests: Requests, held: list[pbe_pb2.OrderedBuildEvent]) -> None:
        for ordered in held:
            await self._enqueue(ordered)
        async for request in requests:
            await self._enqueue(self._check(request))
        async with self.changed:
            self.half_closed = True
            self.changed.notify_all()

    # ----- the services' side ------------------------------------------------------------------

    def _backend(self, name: str, connect: Callable[[], grpc.aio.StreamStreamCall], opening: Any,
                 pack: Callable[[list[Item]], Any], finishing: Any) -> Backend:
        return Backend(name, connect, opening, pack, finishing, Outage(name, self.options.retry_seconds),
                        asyncio.Event())

    async def _ship(self, backend: Backend) -> None:
        """Keep one backend in step with the stream until it has stored all of it, riding out outages.

        The metadata service decides whether the stream may write to the invocation at all (same build,
        not complete); the others open only after it said yes, so a refused stream writes nothing anywhere."""
        if backend is not self.backends[0]:
            await self.backends[0].admitted.wait()
        while True:
            try:
                await self._session(backend)
                return
            except (grpc.aio.AioRpcError, ApiError) as err:
                await backend.outage.pause(err)
                metrics.BES_BACKEND_RETRIES.labels(backend.name).inc()

    async def _session(self, backend: Backend) -> None:
        """One internal stream: open (the service says what it has), send what it lacks, finish."""
        call = backend.connect()
        try:
            await call.write(backend.opening)
            opened = await call.read()
            if opened is grpc.aio.EOF:
                raise ApiError(f"the {backend.name} service closed the stream at open")
            backend.outage.recovered()
            backend.admitted.set()
            async with self.changed:
                backend.sent = max(opened.last_sequence, self.base)
                backend.in_flight.clear()
                self._stored(backend, opened.last_sequence)
            writer = asyncio.create_task(self._feed(backend, call))
            reader = asyncio.create_task(self._follow(backend, call))
            try:
                await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_EXCEPTION)
                if not reader.done():  # a write failed: the reader is about to get the call's status
                    await asyncio.wait({reader}, timeout=5)
                for task in (reader, writer):  # the call's status first; a failed write only echoes it
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            finally:
                for task in (writer, reader):
                    task.cancel()
                await asyncio.gather(writer, reader, return_exceptions=True)
        finally:
            call.cancel()

    async def _feed(self, backend: Backend, call: grpc.aio.StreamStreamCall) -> None:
        while (batch := await self._next_batch(backend)) is not None:
            await call.write(backend.pack(batch))
            metrics.BES_BATCHES.labels(backend.name).inc()
        if self.finished is not None:  # only Bazel's own end marker finishes: a cancelled call also reads as EOF
            await call.write(backend.finishing)
        await call.done_writing()

    async def _next_batch(self, backend: Backend) -> list[Item] | None:
        """The next batch for `backend`, or None once the stream is over and every backend has stored it all
        (the finish goes out only then: COMPLETE means metadata and log are both whole)."""
        async with self.changed:
            while True:
                while backend.in_flight and backend.in_flight[0] <= backend.durable:
                    backend.in_flight.popleft()
                waiting = self.received - backend.sent
                ending = self.half_closed or self.finished is not None
                if waiting > 0 and len(backend.in_flight) < MAX_IN_FLIGHT:
                    start = backend.sent - self.base
                    oldest = self.items[start].received
                    delay = oldest + self.options.linger - time.perf_counter()
                    if ending or waiting >= BATCH_EVENTS or delay <= 0:
                        batch = list(itertools.islice(self.items, start, start + BATCH_EVENTS))
                        backend.sent = batch[-1].sequence
                        backend.in_flight.append(backend.sent)
                        return batch
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), delay)
                    continue
                if self.half_closed and waiting <= 0 and self.base == self.received:
                    return None
                await self.changed.wait()

    async def _follow(self, backend: Backend, call: grpc.aio.StreamStreamCall) -> None:
        while (response := await call.read()) is not grpc.aio.EOF:
            async with self.changed:
                self._stored(backend, response.last_sequence)
        async with self.changed:
            backend.done = True
            await self._acknowledge()

    def _stored(self, backend: Backend, last_sequence: int) -> None:
        """A backend has stored everything up to `last_sequence` (called holding `changed`)."""
        backend.durable = max(backend.durable, last_sequence)
        stored = min(b.durable for b in self.backends)
        while self.items and self.items[0].sequence <= stored:
            item = self.items.popleft()
            metrics.BES_ACK_LATENCY.observe(time.perf_counter() - item.received)
        self.base = max(self.base, min(stored, self.received))
        self.changed.notify_all()
        self._acknowledge_nowait()

    def _acknowledge_nowait(self) -> None:
        while self.acked < self.base:
            self.acked += 1
            self.outbox.put_nowait(pbe_pb2.PublishBuildToolEventStreamResponse(
                stream_id=self.stream_id, sequence_number=self.acked))

    async def _acknowledge(self) -> None:
        """Ack what is stored; ComponentStreamFinished once every backend has finished the invocation."""
        self._acknowledge_nowait()
        if self.acked + 1 == self.finished and all(b.done for b in self.backends):
            self.acked += 1
            await self.outbox.put(pbe_pb2.PublishBuildToolEventStreamResponse(
                stream_id=self.stream_id, sequence_number=self.acked))

    # ----- the whole call ----------------------------------------------------------------------

    async def run(self, requests: Requests) -> Responses:
        held: list[pbe_pb2.OrderedBuildEvent] = []
        principal = await self._authenticate(requests, held)
        if self.stream_id is None:  # authenticated by the call: look at the first event now
            first = await anext(requests, None)
            if first is None:
                return
            held.append(self._check(first))
        assert self.stream_id is not None
        invocation_id = self.stream_id.invocation_id
        key = self.ctx.api_key()
        if key:
            self.secrets.append(key)
        self.backends = [
            self._backend("metadata", self.metadata.Ingest, metadata_pb2.IngestRequest(open=metadata_pb2.IngestOpen(
                tenant=principal.tenant, invocation_id=invocation_id, key_id=principal.key_id,
                secrets=self.secrets, build_id_hash=build_id_hash(self.stream_id))), events_request,
                metadata_pb2.IngestRequest(finish=metadata_pb2.IngestFinish())),
            self._backend("logs", self.logs.Append, logs_pb2.AppendRequest(open=logs_pb2.LogOpen(
                tenant=principal.tenant, invocation_id=invocation_id)), entries_request,
                logs_pb2.AppendRequest(finish=logs_pb2.LogFinish()))]
        for backend in self.backends:
            backend.durable = backend.sent = self.base
        metrics.BES_STREAMS.inc()
        try:
            async for response in self._pipeline(requests, held):
                yield response
        except grpc.aio.AioRpcError as err:
            log.warning("build event stream of %s stopped by a backend call: %s %s", invocation_id,
                        err.code().name, err.details())
            raise from_rpc_error(err) from None
        finally:
            metrics.BES_STREAMS.dec()

    async def _pipeline(self, requests: Requests, held: list[pbe_pb2.OrderedBuildEvent]) -> Responses:
        """Acks flow out while Bazel's events are read and both backends are fed; the first failure ends it."""
        async def drive() -> None:
            try:
                shippers = [asyncio.create_task(self._ship(b)) for b in self.backends]
                reader = asyncio.create_task(self._read(requests, held))
                tasks = {reader, *shippers}
                try:
                    while tasks:
                        done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                        for task in done:
                            task.result()
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                await self.outbox.put(None)

        driver = asyncio.create_task(drive())
        try:
            while (response := await self.outbox.get()) is not None:
                yield response
            await driver  # re-raise what stopped the pipeline
        finally:
            driver.cancel()
            with contextlib.suppress(BaseException):
                await driver


class BuildEventServicer:
    def __init__(self, metadata: grpc.aio.Channel, logs: grpc.aio.Channel, resolver: KeyResolver,
                 options: BesOptions) -> None:
        self.metadata = metadata_pb2_grpc.MetadataStub(metadata)
        self.logs = logs_pb2_grpc.LogsStub(logs)
        self.resolver = resolver
        self.options = options

    async def PublishLifecycleEvent(self, request: pbe_pb2.PublishLifecycleEventRequest,
                                    ctx: CallContext) -> empty_pb2.Empty:
        """Lifecycle events carry nothing we store; they are accepted without a key, as BuildBuddy does."""
        return empty_pb2.Empty()

    async def PublishBuildToolEventStream(
            self, requests: Requests,
            ctx: CallContext) -> Responses:
        stream = BesStream(ctx, self.metadata, self.logs, self.resolver, self.options)
        async for response in stream.run(requests):
            yield response
