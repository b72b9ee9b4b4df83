"""What a build event stream sends to the internal services, and each service's side of it.

Every event goes to metadata (the raw event) and the console text of Progress events to logs,
in batches (services.gateway.bes says when).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from services.common import wire
from services.gateway import metrics
from services.gateway.retry import Outage
from services.gen.bbapi.internal.v1 import logs_pb2, metadata_pb2
from services.gen.build_event_stream import build_event_stream_pb2 as bep_pb2
from services.gen.google.devtools.build.v1 import build_events_pb2 as be_pb2

_PROGRESS = bep_pb2.BuildEvent.DESCRIPTOR.fields_by_name["progress"].number


def log_text(event: bytes) -> bytes:
    """A Progress event's console text, stderr then stdout, read straight off the wire."""
    for number, value in wire.fields(event):
        if number == _PROGRESS and isinstance(value, memoryview):
            parts = dict(wire.fields(value))
            return b"".join(part for n in (2, 1) if isinstance(part := parts.get(n), memoryview))
    return b""


def build_id_hash(stream_id: be_pb2.StreamId) -> str:
    return hashlib.sha256(stream_id.build_id.encode()).hexdigest() if stream_id.build_id else ""


@dataclass
class Item:
    sequence: int
    payload: bytes
    text: bytes
    received: float


@dataclass
class Backend:
    """One internal service's side of the stream: what it has stored, what was sent to it."""

    name: str
    connect: Callable[[], grpc.aio.StreamStreamCall]
    opening: Any
    pack: Callable[[list[Item]], Any]
    finishing: Any
    outage: Outage
    admitted: asyncio.Event  # set once this backend accepted the stream; the others wait for the first one's
    durable: int = 0
    sent: int = 0
    in_flight: collections.deque[int] = field(default_factory=collections.deque)  # last sequence per batch
    done: bool = False


def events_request(batch: list[Item]) -> metadata_pb2.IngestRequest:
    metrics.BES_EVENTS.inc(len(batch))
    return metadata_pb2.IngestRequest(events=metadata_pb2.IngestEvents(events=[
        metadata_pb2.IngestEvent(sequence_number=i.sequence, build_event=i.payload) for i in batch]))


def entries_request(batch: list[Item]) -> logs_pb2.AppendRequest:
    return logs_pb2.AppendRequest(entries=logs_pb2.LogEntries(entries=[
        logs_pb2.LogEntry(sequence_number=i.sequence, text=i.text) for i in batch]))
