"""JSON Schemas for proto messages, following the proto3 JSON mapping, for the OpenAPI document.

The HTTP API speaks proto3 JSON (lowerCamelCase names, 64-bit integers as strings, enums by
name), so its schema is derived from the descriptors rather than written twice.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

Schema = dict[str, Any]

_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.Any": {"type": "object"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
}
_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_SINT32,
          FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32}


def ref(descriptor: Descriptor) -> Schema:
    return {"$ref": f"#/components/schemas/{descriptor.full_name}"}


def _scalar(field: FieldDescriptor, components: dict[str, Schema]) -> Schema:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        return message_schema(field.message_type, components)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    if kind in _INT64:
        return {"type": "string", "pattern": "^-?[0-9]+$", "description": "64-bit integer as a string"}
    if kind in _INT32:
        return {"type": "integer"}
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number"}
    if kind == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    return {"type": "string"}


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def message_schema(descriptor: Descriptor, components: dict[str, Schema]) -> Schema:
    """A $ref to the message's schema, adding it (and everything it uses) to `components`."""
    if descriptor.full_name in _WELL_KNOWN:
        return _WELL_KNOWN[descriptor.full_name]
    if descriptor.full_name not in components:
        components[descriptor.full_name] = {}  # placeholder: recursive messages refer to it
        properties: Schema = {}
        for field in descriptor.fields:
            if field.message_type is not None and _is_map(field):
                value = field.message_type.fields_by_name["value"]
                schema: Schema = {"type": "object", "additionalProperties": _scalar(value, components)}
            elif field.is_repeated:
                schema = {"type": "array", "items": _scalar(field, components)}
            else:
                schema = _scalar(field, components)
            properties[field.json_name] = schema
        components[descriptor.full_name] = {"type": "object", "properties": properties,
                                            "additionalProperties": False}
    return ref(descriptor)
