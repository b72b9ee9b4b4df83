"""Build events for the tests: the recorded Bazel runs, and synthetic events made to order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.internal.decoder import _DecodeVarint32  # type: ignore[attr-defined]

from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations.ingest import IngestStream, InvocationStore

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAKE_KEY = "FixtureKey0123456789"
Events = list[tuple[int, bytes]]


def recorded(name: str) -> Events:
    """A recorded run's events, numbered from 1 as the Build Event Service numbers them."""
    data = (FIXTURES / f"{name}.bep").read_bytes()
    events: Events = []
    position = 0
    while position < len(data):
        size, position = _DecodeVarint32(data, position)
        events.append((len(events) + 1, data[position:position + size]))
        position += size
    return events


def invocation_id_of(events: Events) -> str:
    return bes.BuildEvent.FromString(events[0][1]).started.uuid


def numbered(events: Sequence[bes.BuildEvent], first: int = 1) -> Events:
    return [(first + i, e.SerializeToString()) for i, e in enumerate(events)]


async def ingest(store: InvocationStore, tenant: str, events: Events, invocation_id: str | None = None,
                 batch: int = 50, secrets: Sequence[str] = (), finish: bool = True) -> IngestStream:
    stream = await store.open(tenant, invocation_id or str(uuid.uuid4()), "AKtest", secrets)
    for start in range(0, len(events), batch):
        await stream.append(events[start:start + batch])
    if finish:
        await stream.finish()
    return stream
