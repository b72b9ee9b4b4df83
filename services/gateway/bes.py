"""Build Event Service (google.devtools.build.v1.PublishBuildEvent) at the public edge.

One Bazel stream becomes two internal streams: every event goes to the metadata service, the
console text of Progress events to the logs service. Events travel in batches: whatever
arrived while the previous batch was being committed forms the next one, so a quiet build is
acknowledged at once and a busy one in large transactions. Bazel gets an acknowledgement for a
sequence number only when both services have durably stored everything up to it.

Bazel re-sends from its first unacknowledged event after a broken stream; the services drop
what they already have, so acks for re-sent events come back at once. The API key may arrive
with the call (header or target userinfo) or only inside the build's options text
(`--remote_header=x-buildbuddy-api-key=KEY`): until it is known, events are held back (at most
PREAUTH_EVENTS), and if the first options-bearing event carries no key the stream is refused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from services.common import wire
from services.common.auth import Capability, Principal
from services.common.bep_keys import find_api_key, needs_redaction, redact_text
from services.common.errors import ApiError, InvalidArgument, Unauthenticated, from_rpc_error
from services.gateway import metrics
from services.gateway.auth import KeyResolver
from services.gateway.front import CallContext
from services.gen.bbapi.internal.v1 import logs_pb2, logs_pb2_grpc, metadata_pb2, metadata_pb2_grpc
from services.gen.build_event_stream import build_event_stream_pb2 as bep_pb2
from services.gen.google.devtools.build.v1 import build_events_pb2 as be_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2

BAZEL_EVENT_TYPE = "type.googleapis.com/build_event_stream.BuildEvent"
PREAUTH_EVENTS = 100
BATCH_EVENTS = 1000
MAX_IN_FLIGHT = 2
MAX_PENDING_EVENTS = 5000
_PROGRESS = bep_pb2.BuildEvent.DESCRIPTOR.fields_by_name["progress"].number
_OPTIONS_PAYLOADS = {"started", "options_parsed"}
Requests = AsyncIterator[pbe_pb2.PublishBuildToolEventStreamRequest]
Responses = AsyncIterator[pbe_pb2.PublishBuildToolEventStreamResponse]
log = logging.getLogger(__name__)


def log_text(event: bytes) -> bytes:
    """A Progress event's console text, stderr then stdout, read straight off the wire."""
    for number, value in wire.fields(event):
        if number == _PROGRESS and isinstance(value, memoryview):
            parts = dict(wire.fields(value))
            return b"".join(part for n in (2, 1) if isinstance(part := parts.get(n), memoryview))
    return b""


@dataclass
class _Item:
    sequence: int
    payload: bytes
    text: bytes


@dataclass
class BesStream:
    """One PublishBuildToolEventStream call."""

    ctx: CallContext
    metadata: metadata_pb2_grpc.MetadataStub
    logs: logs_pb2_grpc.LogsStub
    resolver: KeyResolver
    allow_anonymous: bool
    stream_id: be_pb2.StreamId | None = None
    next_sequence: int | None = None
    finished: int | None = None  # sequence of ComponentStreamFinished
    pending: list[_Item] = field(default_factory=list)
    received: dict[int, float] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    space: asyncio.Event = field(default_factory=asyncio.Event)
    outbox: asyncio.Queue[pbe_pb2.PublishBuildToolEventStreamResponse | None] = field(
        default_factory=asyncio.Queue)
    durable: dict[str, int] = field(default_factory=lambda: {"metadata": 0, "logs": 0})
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    acked: int = 0
    written: int = 0  # last sequence whose batch both backend calls have taken
    closed: bool = False
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
            self.acked = self.written = ordered.sequence_number - 1
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
        """The stream's principal: from the call, else from the options text of the build."""
        if self.ctx.principal is not None:
            return self.ctx.principal
        async for request in requests:
            ordered = self._check(request)
            held.append(ordered)
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
                return await self.resolver.resolve(key)
            if event.WhichOneof("payload") in _OPTIONS_PAYLOADS or len(held) >= PREAUTH_EVENTS:
                break
        if self.allow_anonymous:
            return Principal("anonymous", Capability.READ, "anonymous")
        raise Unauthenticated("no API key: send x-buildbuddy-api-key as a header, as "
                              "--bes_backend=grpc://KEY@host, or with --remote_header=x-buildbuddy-api-key=KEY")

    def _enqueue(self, ordered: pbe_pb2.OrderedBuildEvent) -> None:
        payload = self._payload(ordered)
        if payload is None:
            self.finished = ordered.sequence_number
            return
        try:
            text = log_text(payload)
        except DecodeError:
            raise InvalidArgument(f"event {ordered.sequence_number} is not a decodable BuildEvent") from None
        if text and needs_redaction(text, self.secrets):
            text = redact_text(text.decode("utf-8", "replace"), self.secrets).encode()
        self.pending.append(_Item(ordered.sequence_number, payload, text))
        self.received[ordered.sequence_number] = time.perf_counter()
        self.wake.set()

    async def _read(self, requests: Requests,
                    held: list[pbe_pb2.OrderedBuildEvent]) -> None:
        for ordered in held:
            self._enqueue(ordered)
        async for request in requests:
            self._enqueue(self._check(request))
            if len(self.pending) >= MAX_PENDING_EVENTS:  # the services are behind: slow Bazel down
                self.space.clear()
                await self.space.wait()

    # ----- the services' side ------------------------------------------------------------------

    async def _send(self, ingest: grpc.aio.StreamStreamCall, append: grpc.aio.StreamStreamCall) -> None:
        """Ship what is pending as one batch whenever fewer than MAX_IN_FLIGHT batches await commit.

        While batches are being committed, new events pile up and go out together: a slow
        database gets larger (cheaper per event) transactions, an idle one single events at once.
        """
        in_flight: collections.deque[int] = collections.deque()  # last sequence of each batch sent
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                while in_flight and in_flight[0] <= min(self.durable.values()):
                    in_flight.popleft()
                if len(in_flight) >= MAX_IN_FLIGHT:
                    self.committed.clear()
                    if in_flight[0] > min(self.durable.values()):
                        await self.committed.wait()
                    continue
                batch, self.pending = self.pending[:BATCH_EVENTS], self.pending[BATCH_EVENTS:]
                in_flight.append(batch[-1].sequence)
                self.space.set()
                await ingest.write(metadata_pb2.IngestRequest(events=metadata_pb2.IngestEvents(events=[
                    metadata_pb2.IngestEvent(sequence_number=i.sequence, build_event=i.payload) for i in batch])))
                await append.write(logs_pb2.AppendRequest(entries=logs_pb2.LogEntries(entries=[
                    logs_pb2.LogEntry(sequence_number=i.sequence, text=i.text) for i in batch])))
                self.written = batch[-1].sequence
                self.progress.set()
                metrics.BES_EVENTS.inc(len(batch))

    async def _follow(self, name: str, call: grpc.aio.StreamStreamCall) -> None:
        while (response := await call.read()) is not grpc.aio.EOF:
            self.durable[name] = max(self.durable[name], response.last_sequence)
            self.progress.set()
            self.committed.set()
            await self._acknowledge()

    async def _acknowledge(self) -> None:
        durable = min(self.durable.values())
        limit = self.next_sequence - 1 if self.next_sequence is not None else 0
        while self.acked < min(durable, limit) or (self.acked + 1 == self.finished and self.closed):
            self.acked += 1
            started = self.received.pop(self.acked, None)
            if started is not None:
                metrics.BES_ACK_LATENCY.observe(time.perf_counter() - started)
            await self.outbox.put(pbe_pb2.PublishBuildToolEventStreamResponse(
                stream_id=self.stream_id, sequence_number=self.acked))

    # ----- the whole call ----------------------------------------------------------------------

    async def run(self, requests: Requests
                  ) -> Responses:
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
        ingest = self.metadata.Ingest()
        append = self.logs.Append()
        try:
            await ingest.write(metadata_pb2.IngestRequest(open=metadata_pb2.IngestOpen(
                tenant=principal.tenant, invocation_id=invocation_id, key_id=principal.key_id,
                secrets=self.secrets)))
            await append.write(logs_pb2.AppendRequest(open=logs_pb2.LogOpen(
                tenant=principal.tenant, invocation_id=invocation_id)))
            metrics.BES_STREAMS.inc()
            async for response in self._pipeline(requests, held, ingest, append):
                yield response
        except grpc.aio.AioRpcError as err:
            log.warning("build event stream of %s stopped by a backend call: %s %s", invocation_id,
                        err.code().name, err.details())
            raise from_rpc_error(err) from None
        finally:
            metrics.BES_STREAMS.dec()
            ingest.cancel()
            append.cancel()

    async def _pipeline(self, requests: Requests,
                        held: list[pbe_pb2.OrderedBuildEvent], ingest: grpc.aio.StreamStreamCall,
                        append: grpc.aio.StreamStreamCall) -> Responses:
        async def drive() -> None:
            try:
                await self._open(ingest, append)
                await self._stream(requests, held, ingest, append)
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

    async def _open(self, ingest: grpc.aio.StreamStreamCall, append: grpc.aio.StreamStreamCall) -> None:
        """Both services must accept the invocation before any event is sent, so that a refusal
        (not a UUID, already complete, ...) arrives as its own clear status."""
        for name, call in (("metadata", ingest), ("logs", append)):
            opened = await call.read()
            if opened is grpc.aio.EOF:
                raise ApiError(f"the {name} service closed the stream at open")
            self.durable[name] = opened.last_sequence

    async def _stream(self, requests: Requests, held: list[pbe_pb2.OrderedBuildEvent],
                      ingest: grpc.aio.StreamStreamCall, append: grpc.aio.StreamStreamCall) -> None:
        """Forward Bazel's events until it half-closes, then finish both logs once all is stored."""
        sender = asyncio.create_task(self._send(ingest, append))
        followers = [asyncio.create_task(self._follow("metadata", ingest)),
                     asyncio.create_task(self._follow("logs", append))]
        try:
            await self._read(requests, held)
            await self._drain(sender, followers)
            await ingest.write(metadata_pb2.IngestRequest(finish=metadata_pb2.IngestFinish()))
            await append.write(logs_pb2.AppendRequest(finish=logs_pb2.LogFinish()))
            await ingest.done_writing()
            await append.done_writing()
            await asyncio.gather(*followers)
            self.closed = True
            await self._acknowledge()
        finally:
            for task in (sender, *followers):
                task.cancel()

    async def _drain(self, sender: asyncio.Task[None], followers: list[asyncio.Task[None]]) -> None:
        """Wait until every event read so far is written to and committed by both services.

        Both conditions count: a retry of stored events is durable from the open on, yet its re-sent
        batches may still be going out, and a call takes one write at a time (a second one fails)."""
        last = (self.next_sequence or 1) - 1
        if self.finished is not None:
            last -= 1  # ComponentStreamFinished is ours to acknowledge
        tasks = {sender, *followers}
        for task in tasks:
            task.add_done_callback(lambda _task: self.progress.set())
        while min(self.durable.values()) < last or self.written < last:
            if any(task.done() for task in tasks):
                await self._failure(sender, followers)
            self.progress.clear()
            await self.progress.wait()

    @staticmethod
    async def _failure(sender: asyncio.Task[None], followers: list[asyncio.Task[None]]) -> None:
        """Raise why a backend stream stopped: its own status first (a failed write only says 'finished')."""
        await asyncio.wait(followers, timeout=5)
        for task in (*followers, sender):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        raise ApiError("a build-event backend stream ended early")


class BuildEventServicer:
    def __init__(self, metadata: grpc.aio.Channel, logs: grpc.aio.Channel, resolver: KeyResolver,
                 allow_anonymous: bool = False) -> None:
        self.metadata = metadata_pb2_grpc.MetadataStub(metadata)
        self.logs = logs_pb2_grpc.LogsStub(logs)
        self.resolver = resolver
        self.allow_anonymous = allow_anonymous

    async def PublishLifecycleEvent(self, request: pbe_pb2.PublishLifecycleEventRequest,
                                    ctx: CallContext) -> empty_pb2.Empty:
        """Lifecycle events carry nothing we store; they are accepted without a key, as BuildBuddy does."""
        return empty_pb2.Empty()

    async def PublishBuildToolEventStream(
            self, requests: Requests,
            ctx: CallContext) -> Responses:
        stream = BesStream(ctx, self.metadata, self.logs, self.resolver, self.allow_anonymous)
        async for response in stream.run(requests):
            yield response
