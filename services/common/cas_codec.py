"""The CAS shard contract's bulk messages (Read responses, Write requests), framed by hand.

See services.common.wire for why. All other CasShard messages use protobuf as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common import wire
from services.gen.bbapi.internal.v1 import cas_pb2

SERVICE = cas_pb2.DESCRIPTOR.services_by_name["CasShard"]
READ_PATH = f"/{SERVICE.full_name}/Read"
WRITE_PATH = f"/{SERVICE.full_name}/Write"
_READ_DATA = cas_pb2.ReadResponse.DESCRIPTOR.fields_by_name["data"].number
_WRITE_DATA = cas_pb2.WriteRequest.DESCRIPTOR.fields_by_name["data"].number


def encode_read(data: bytes) -> bytes:
    return wire.bytes_field(_READ_DATA, data)


def decode_read(raw: bytes) -> bytes:
    for number, value in wire.fields(raw):
        if number == _READ_DATA and isinstance(value, memoryview):
            return bytes(value)
    return b""


@dataclass(frozen=True, slots=True)
class WriteMessage:
    """A Write request: the first carries the header (scope, digest, compressor), all may carry data."""

    header: cas_pb2.WriteRequest | None
    data: bytes


def encode_write_data(data: bytes) -> bytes:
    return wire.bytes_field(_WRITE_DATA, data)


def decode_write(raw: bytes) -> WriteMessage:
    parsed = list(wire.fields(raw))
    if all(number == _WRITE_DATA for number, _ in parsed):
        return WriteMessage(None, b"".join(bytes(v) for _, v in parsed if isinstance(v, memoryview)))
    header = cas_pb2.WriteRequest.FromString(raw)
    return WriteMessage(header, header.data)
