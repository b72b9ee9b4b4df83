"""API keys inside Bazel's build events: find the one a build carries, and redact every secret.

`--remote_header=x-buildbuddy-api-key=KEY` puts the key into the options Bazel reports (BuildStarted,
OptionsParsed, the command lines), and `grpc://KEY@host` puts it into URLs: the options, and every
`bytestream://KEY@host/...` file URI Bazel reports. The gateway needs the key to authenticate a
stream; nothing that is stored may contain it, so URL userinfo of any scheme is redacted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, AnyStr

from google.protobuf import unknown_fields
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from services.gen.build_event_stream import build_event_stream_pb2 as bes

REDACTED = "<REDACTED>"
_KEY_IN_OPTIONS = re.compile(r"x-buildbuddy-api-key=([A-Za-z0-9]{20})(?![A-Za-z0-9])")
# Each pattern's group 1 is what gets replaced: a header value, or a URL's userinfo.
_PATTERNS = (r"(?i)x-buildbuddy-api-key\s*[=:]\s*([A-Za-z0-9]+)",
             r"(?i)\b[a-z][a-z0-9+.-]*://([^\s/@'\"<>]+)@")
_TEXT = tuple(re.compile(p) for p in _PATTERNS)
_BYTES = tuple(re.compile(p.encode()) for p in _PATTERNS)
_Replace = Callable[[bytes], bytes]


def find_api_key(event: bes.BuildEvent) -> str | None:
    """The last `x-buildbuddy-api-key=<key>` in the options text this event carries, if any."""
    found = None
    for text in _option_texts(event):
        for match in _KEY_IN_OPTIONS.finditer(text):
            found = match[1]
    return found


def _option_texts(event: bes.BuildEvent) -> Iterator[str]:
    kind = event.WhichOneof("payload")
    if kind == "started":
        yield event.started.options_description
    elif kind == "options_parsed":
        yield from event.options_parsed.cmd_line
        yield from event.options_parsed.explicit_cmd_line
    elif kind == "unstructured_command_line":
        yield from event.unstructured_command_line.args
    elif kind == "structured_command_line":
        for section in event.structured_command_line.sections:
            for option in section.option_list.option:
                yield option.combined_form
                yield option.option_value


def redact_text(text: str, secrets: Collection[str]) -> str:
    """`text` with the secrets, API-key header values and URL userinfo replaced by <REDACTED>."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _TEXT:
        text = pattern.sub(lambda m: _replace_group(m, REDACTED), text)
    return text


def _replace_group(match: re.Match[AnyStr], replacement: AnyStr) -> AnyStr:
    """The match with its group 1 replaced (text or bytes)."""
    whole, start = match[0], match.start(1) - match.start(0)
    return whole[:start] + replacement + whole[start + len(match[1]):]


def needs_redaction(data: bytes, secrets: Collection[str]) -> bool:
    """Whether a serialized event may hold something to redact (a cheap scan that skips most events).

    Plain substring tests (memmem speed) rule out nearly every event and log text before either
    regular expression has to scan it.
    """
    if any(s and s.encode() in data for s in secrets):
        return True
    if b"://" in data and b"@" in data and _BYTES[1].search(data):
        return True
    return b"x-buildbuddy-api-key" in data.lower() and _BYTES[0].search(data) is not None


def redact(event: bes.BuildEvent, secrets: Collection[str]) -> bes.BuildEvent:
    """A copy of `event` with every string redacted; unknown fields survive (masked in place if needed)."""
    copy = bes.BuildEvent()
    copy.CopyFrom(event)
    _redact_message(copy, [s for s in secrets if s])
    return copy


def _redact_message(message: Message, secrets: list[str]) -> None:
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _redact_map(value, field.message_type.fields_by_name["value"], secrets)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in _items(field, value):
                _redact_message(item, secrets)
        elif field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            _redact_scalars(message, field, value, secrets)
    _mask_unknown(message, secrets)


def _items(field: FieldDescriptor, value: Any) -> Iterable[Message]:
    return value if field.is_repeated else [value]


def _redact_map(mapping: Any, value_field: FieldDescriptor, secrets: list[str]) -> None:
    for key in list(mapping):
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            _redact_message(mapping[key], secrets)
        elif value_field.type == FieldDescriptor.TYPE_STRING:
            mapping[key] = redact_text(mapping[key], secrets)


def _redact_scalars(message: Message, field: FieldDescriptor, value: Any, secrets: list[str]) -> None:
    def one(item: Any) -> Any:
        if field.type == FieldDescriptor.TYPE_STRING:
            return redact_text(item, secrets)
        return _redact_bytes(item, secrets, _with_marker)

    if field.is_repeated:
        redacted = [one(item) for item in value]
        del value[:]
        value.extend(redacted)
    else:
        setattr(message, field.name, one(value))


def _with_marker(_found: bytes) -> bytes:
    return REDACTED.encode()


def _same_length(found: bytes) -> bytes:
    return b"*" * len(found)


def _redact_bytes(data: bytes, secrets: list[str], replace: _Replace) -> bytes:
    for secret in secrets:
        data = data.replace(secret.encode(), replace(secret.encode()))
    for pattern in _BYTES:
        data = pattern.sub(lambda m: _replace_group(m, replace(m[1])), data)
    return data


def _mask_unknown(message: Message, secrets: list[str]) -> None:
    """Unknown fields cannot be walked, so secrets in them are masked byte for byte: same length keeps the
    wire framing valid. Should re-parsing fail anyway, the unknown fields are dropped rather than leak."""
    unknown = unknown_fields.UnknownFieldSet(message)
    if not any(unknown[i].wire_type == 2 and needs_redaction(unknown[i].data, secrets) for i in range(len(unknown))):
        return
    original = message.SerializeToString()
    message.Clear()
    try:
        message.MergeFromString(_redact_bytes(original, secrets, _same_length))
    except DecodeError:
        message.Clear()
        message.MergeFromString(original)
        message.DiscardUnknownFields()
