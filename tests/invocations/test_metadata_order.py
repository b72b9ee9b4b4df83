"""BuildMetadata entries come out in the order they are on the wire, whatever protobuf's map order."""

from __future__ import annotations

from services.common import wire
from services.gen.build_event_stream import build_event_stream_pb2 as bes
from services.metadata.invocations.metadata_order import build_metadata_entries
from tests.invocations.support import FIXTURES, recorded

BUILD_METADATA = bes.BuildEvent.DESCRIPTOR.fields_by_name["build_metadata"].number


def build_metadata(*entries: tuple[str, str]) -> bytes:
    """A BuildEvent's build_metadata field holding the map entries in this order."""
    body = b"".join(wire.bytes_field(1, wire.bytes_field(1, k.encode()) + wire.bytes_field(2, v.encode()))
                    for k, v in entries)
    return wire.bytes_field(BUILD_METADATA, body)


def test_entries_in_wire_order_across_repeated_fields() -> None:
    entries = [(f"KEY_{i:02d}", f"välue {i}") for i in reversed(range(40))]
    raw = build_metadata(*entries[:30]) + wire.bytes_field(5000, b"unknown") + build_metadata(*entries[30:])
    assert dict(bes.BuildEvent.FromString(raw).build_metadata.metadata) == dict(entries)  # valid, same content
    assert build_metadata_entries(raw) == entries
    assert build_metadata_entries(build_metadata(("", ""), ("K", ""))) == [("", ""), ("K", "")]
    assert build_metadata_entries(b"") == []


def test_valid_events_the_wire_reader_cannot_walk_fall_back_to_map_order() -> None:
    group = wire.tag(2000, 3) + wire.tag(1, wire.VARINT) + b"\x01" + wire.tag(2000, 4)
    raw = build_metadata(("B", "2"), ("A", "1")) + group
    assert sorted(build_metadata_entries(raw)) == [("A", "1"), ("B", "2")]


def test_recorded_runs_agree_with_protobuf() -> None:
    seen = 0
    for path in sorted(FIXTURES.glob("*.bep")):
        for _sequence, raw in recorded(path.stem):
            event = bes.BuildEvent.FromString(raw)
            if event.HasField("build_metadata"):
                seen += 1
                assert dict(build_metadata_entries(raw)) == dict(event.build_metadata.metadata)
            else:
                assert build_metadata_entries(raw) == []
    assert seen
