"""The protobuf wire format, for the handful of messages that carry bulk bytes.

`python bench/codecs.py` measures it: on our 2-vCPU machine protobuf (upb) takes ~140 us to
serialize or parse a ReadResponse with a 255 KiB `data` field, framing it here ~8 us (for
1 MiB: ~110-120 us vs ~46 us, where the one copy of the data dominates). So the streaming
RPCs (ByteStream Read/Write, the CAS shard's Read/Write, GetFile) encode and decode their
messages here, as do the digest-heavy CAS batch answers (services.gateway.cas_wire); every other
message still goes through protobuf. Tests check both directions
against protobuf's own encoding.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import DecodeError

VARINT, I64, LEN, I32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement on the wire
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def bytes_field(number: int, data: bytes | memoryview) -> bytes:
    """One length-delimited field: a whole message when it has a single bytes field."""
    return b"".join((tag(number, LEN), varint(len(data)), data))


def _read_varint(view: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(view) or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = view[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def fields(data: bytes | memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) pairs: ints for varints, zero-copy views for length-delimited."""
    view = memoryview(data)
    position = 0
    while position < len(view):
        key, position = _read_varint(view, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        if wire_type == VARINT:
            value, position = _read_varint(view, position)
            yield number, value
        elif wire_type == LEN:
            size, position = _read_varint(view, position)
            if position + size > len(view):
                raise DecodeError("truncated length-delimited field")
            yield number, view[position:position + size]
            position += size
        elif wire_type in (I64, I32):
            position += 8 if wire_type == I64 else 4  # no bulk message has fixed-width fields: skip
            if position > len(view):
                raise DecodeError("truncated fixed-width field")
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")


def int64(value: int) -> int:
    """A decoded varint read as a signed int64."""
    return value - (1 << 64) if value >= 1 << 63 else value
