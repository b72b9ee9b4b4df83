"""Conversions between wire messages and the domain types, validating on the way in."""

from __future__ import annotations

from collections.abc import Iterable

from services.common.errors import ApiError, error_for
from services.common.hashing import DigestFunction
from services.common.resources import SHA256, Compressor, Digest, check_compressor, check_digest, check_digests
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.google.rpc import status_pb2


def digest_in(message: re_pb2.Digest, function: DigestFunction = SHA256) -> Digest:
    return check_digest(message.hash, message.size_bytes, function)


def digests_in(messages: Iterable[re_pb2.Digest], function: DigestFunction = SHA256) -> list[Digest]:
    """Many digests validated at once; each field is read in a pass of its own (cheaper than a tuple each)."""
    listed = messages if isinstance(messages, list) else list(messages)
    return check_digests([m.hash for m in listed], [m.size_bytes for m in listed], function)


def digest_out(digest: Digest) -> re_pb2.Digest:
    return re_pb2.Digest(hash=digest.hash, size_bytes=digest.size)


def compressor_in(value: int) -> Compressor:
    return check_compressor(value)


def compressor_out(compressor: Compressor) -> re_pb2.Compressor.Value.ValueType:
    return re_pb2.Compressor.Value.ValueType(compressor.value)


def status_out(error: ApiError | None) -> status_pb2.Status:
    if error is None:
        return status_pb2.Status()
    return status_pb2.Status(code=error.code.value[0], message=error.message)


def status_in(status: status_pb2.Status) -> ApiError | None:
    """A per-item status from another process as the error class of its code."""
    if status.code == 0:
        return None
    return error_for(status.code, status.message)
