"""Publishing build events the way Bazel does, from recorded `--build_event_binary_file` output."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import any_pb2
from google.protobuf.internal.decoder import _DecodeVarint32  # type: ignore[attr-defined]

from services.gen.build_event_stream import build_event_stream_pb2 as bep_pb2
from services.gen.google.devtools.build.v1 import build_events_pb2 as be_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2_grpc as pbe_grpc

BAZEL_EVENT = "type.googleapis.com/build_event_stream.BuildEvent"


def read_bep(path: Path) -> list[bytes]:
    """The serialized BuildEvents of a --build_event_binary_file (varint-delimited)."""
    data = path.read_bytes()
    events, position = [], 0
    while position < len(data):
        size, position = _DecodeVarint32(data, position)
        events.append(data[position:position + size])
        position += size
    return events


def decode(event: bytes) -> bep_pb2.BuildEvent:
    return bep_pb2.BuildEvent.FromString(event)


def progress(stderr: str = "", stdout: str = "", count: int = 0) -> bytes:
    event = bep_pb2.BuildEvent(progress=bep_pb2.Progress(stderr=stderr, stdout=stdout))
    event.id.progress.opaque_count = count
    return event.SerializeToString()


def request(invocation_id: str, sequence: int, event: bytes | None,
            build_id: str | None = None) -> pbe_pb2.PublishBuildToolEventStreamRequest:
    """One OrderedBuildEvent; the build_id is Bazel's per-command id, the same in every retry of its stream."""
    ordered = pbe_pb2.OrderedBuildEvent(
        stream_id=be_pb2.StreamId(build_id=build_id or "build-" + invocation_id, invocation_id=invocation_id,
                                  component=be_pb2.StreamId.BuildComponent.TOOL),
        sequence_number=sequence)
    if event is None:
        ordered.event.component_stream_finished.type = \
            be_pb2.BuildEvent.BuildComponentStreamFinished.FinishType.FINISHED
    else:
        ordered.event.bazel_event.CopyFrom(any_pb2.Any(type_url=BAZEL_EVENT, value=event))
    return pbe_pb2.PublishBuildToolEventStreamRequest(ordered_build_event=ordered)


@dataclass
class Publisher:
    """A BES client: sends events, collects acknowledgements."""

    target: str
    key: str | None = None
    build_id: str | None = None  # default: derived from the invocation id, so every Publisher is one build
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pbe_grpc.PublishBuildEventStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def metadata(self) -> list[tuple[str, str]]:
        return [("x-buildbuddy-api-key", self.key)] if self.key else []

    def publish(self, invocation_id: str, events: Sequence[bytes], start: int = 1,
                finish: bool = True) -> list[int]:
        """Send events[start-1:] numbered from `start` (plus the final marker); returns acked numbers."""
        def requests() -> Iterator[pbe_pb2.PublishBuildToolEventStreamRequest]:
            for sequence in range(start, len(events) + 1):
                yield request(invocation_id, sequence, events[sequence - 1], self.build_id)
            if finish:
                yield request(invocation_id, len(events) + 1, None, self.build_id)

        return [r.sequence_number for r in self.stub.PublishBuildToolEventStream(requests(), metadata=self.metadata)]

    def publish_and_break(self, invocation_id: str, events: Sequence[bytes], after_acks: int) -> list[int]:
        """Send everything but never half-close; cancel once `after_acks` acks came back."""
        stop = threading.Event()

        def requests() -> Iterator[pbe_pb2.PublishBuildToolEventStreamRequest]:
            for sequence, event in enumerate(events, start=1):
                yield request(invocation_id, sequence, event, self.build_id)
            stop.wait(30)

        call = self.stub.PublishBuildToolEventStream(requests(), metadata=self.metadata)
        acked = []
        for response in call:
            acked.append(response.sequence_number)
            if len(acked) >= after_acks:
                break
        call.cancel()
        stop.set()
        return acked
