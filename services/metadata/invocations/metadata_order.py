"""BuildMetadata entries in the order Bazel sent them.

Python's protobuf runtime iterates maps in hash order, so the entries are read from the event's bytes
through a shadow message that declares the map as what it is on the wire: a repeated key/value message.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from services.gen.build_event_stream import build_event_stream_pb2 as bes

_Field = descriptor_pb2.FieldDescriptorProto
_BUILD_METADATA_FIELD = bes.BuildEvent.DESCRIPTOR.fields_by_name["build_metadata"].number


def _field(name: str, number: int, message: str | None = None, repeated: bool = False) -> _Field:
    label = _Field.LABEL_REPEATED if repeated else _Field.LABEL_OPTIONAL
    if message is None:
        return _Field(name=name, number=number, type=_Field.TYPE_STRING, label=label)
    return _Field(name=name, number=number, type=_Field.TYPE_MESSAGE, label=label, type_name=message)


def _shadow_event() -> type[Message]:
    proto = descriptor_pb2.FileDescriptorProto(name="bbapi_shadow.proto", package="bbapi_shadow", syntax="proto3")
    proto.message_type.add(name="Entry").field.extend([_field("key", 1), _field("value", 2)])
    proto.message_type.add(name="Metadata").field.append(_field("metadata", 1, ".bbapi_shadow.Entry", True))
    proto.message_type.add(name="Event").field.append(
        _field("build_metadata", _BUILD_METADATA_FIELD, ".bbapi_shadow.Metadata"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bbapi_shadow.Event"))


_Event = _shadow_event()


def build_metadata_entries(raw_event: bytes) -> list[tuple[str, str]]:
    """(key, value) pairs of a serialized BuildEvent's build_metadata, in wire order."""
    shadow = _Event.FromString(raw_event)
    return [(entry.key, entry.value) for entry in shadow.build_metadata.metadata]  # type: ignore[attr-defined]
