"""The CAS shard contract's messages: scopes and keys to and from protobuf, and the bulk messages
(Read responses, Write requests) framed by hand (services.common.wire says why)."""

from __future__ import annotations

from dataclasses import dataclass

from services.blobstore.access import Key, Kind, Scope
from services.common import wire
from services.common.convert import digest_in, digest_out
from services.common.hashing import function_of
from services.gen.bbapi.internal.v1 import cas_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2

SERVICE = cas_pb2.DESCRIPTOR.services_by_name["CasShard"]
READ_PATH = f"/{SERVICE.full_name}/Read"
WRITE_PATH = f"/{SERVICE.full_name}/Write"
_READ_DATA = cas_pb2.ReadResponse.DESCRIPTOR.fields_by_name["data"].number
_WRITE_DATA = cas_pb2.WriteRequest.DESCRIPTOR.fields_by_name["data"].number


def scope_in(message: cas_pb2.Scope) -> Scope:
    return Scope(message.tenant, message.instance_name, function_of(message.digest_function))


def scope_out(scope: Scope) -> cas_pb2.Scope:
    return cas_pb2.Scope(tenant=scope.tenant, instance_name=scope.instance_name,
                         digest_function=re_pb2.DigestFunction.Value.ValueType(scope.function.value))


def key_in(message: cas_pb2.StoredKey) -> Key:
    scope = scope_in(message.scope)
    return Key(scope, Kind.AC if message.kind == Kind.AC else Kind.CAS, digest_in(message.digest, scope.function))


def key_out(key: Key) -> cas_pb2.StoredKey:
    return cas_pb2.StoredKey(scope=scope_out(key.scope), kind=key.kind.value, digest=digest_out(key.digest))


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
