"""BuildMetadata entries in the order Bazel sent them.

Python's protobuf runtime iterates maps in hash order, so the entries are read from the event's bytes:
on the wire a map is a repeated key/value message, and a message field sent more than once merges
(its map entries add up, in order).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from services.common import wire
from services.gen.build_event_stream import build_event_stream_pb2 as bes

_BUILD_METADATA = bes.BuildEvent.DESCRIPTOR.fields_by_name["build_metadata"].number
_METADATA = bes.BuildMetadata.DESCRIPTOR.fields_by_name["metadata"].number
_KEY, _VALUE = 1, 2  # every map entry's fields


def build_metadata_entries(raw_event: bytes) -> list[tuple[str, str]]:
    """(key, value) pairs of a serialized BuildEvent's build_metadata, in wire order."""
    try:
        return [_entry(entry) for number, build_metadata in wire.fields(raw_event)
                if number == _BUILD_METADATA and isinstance(build_metadata, memoryview)
                for inner, entry in wire.fields(build_metadata)
                if inner == _METADATA and isinstance(entry, memoryview)]
    except (DecodeError, UnicodeDecodeError):  # valid protobuf wire.fields does not read (groups): map order
        return list(bes.BuildEvent.FromString(raw_event).build_metadata.metadata.items())


def _entry(data: memoryview) -> tuple[str, str]:
    key = value = ""
    for number, field in wire.fields(data):
        if isinstance(field, memoryview):
            if number == _KEY:
                key = bytes(field).decode()
            elif number == _VALUE:
                value = bytes(field).decode()
    return key, value
