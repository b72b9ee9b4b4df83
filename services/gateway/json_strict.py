"""A JSON request's enums and messages, checked as strictly as the OpenAPI document states them.

proto3 JSON takes an enum by name or by number, and a message as an object. protobuf's json_format is
laxer: it also takes booleans, fractions and digit strings for enums (`false` reads as 0, `"3"` as 3),
wraps numbers that do not fit, and reads an empty string (or list) as an empty message. A request saying
`"status": false` would then mean "no filter" instead of being refused.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from services.common.errors import InvalidArgument

_WELL_KNOWN = "google.protobuf."


def _valid(enum: EnumDescriptor, value: object) -> bool:
    if isinstance(value, str):
        return value in enum.values_by_name
    return type(value) is int and -2**31 <= value < 2**31 and value in enum.values_by_number


def _items(field: FieldDescriptor, value: Any) -> list[Any]:
    return value if field.is_repeated and isinstance(value, list) else [value]


def check(document: Any, descriptor: Descriptor) -> None:
    """Raise INVALID_ARGUMENT for an enum value (at any depth) that is neither a name nor a number of its
    enum, or a message that is no JSON object (well-known types have their own forms); everything else is
    left to json_format. Map fields are not looked into (no request has one)."""
    if descriptor.full_name.startswith(_WELL_KNOWN):
        return
    if not isinstance(document, dict):
        raise InvalidArgument(f"a {descriptor.name} must be a JSON object, not {type(document).__name__}")
    for key, value in document.items():
        field = descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)
        if field is None or value is None:
            continue
        for item in _items(field, value):
            if field.enum_type is not None and item is not None and not _valid(field.enum_type, item):
                names = ", ".join(v.name for v in field.enum_type.values)
                raise InvalidArgument(f"{descriptor.name}.{field.json_name}: {item!r} is not one of {names}")
            if field.message_type is not None and item is not None and not field.message_type.GetOptions().map_entry:
                check(item, field.message_type)
