"""FindMissingBlobs and BatchUpdateBlobs responses encoded by hand (services.common.wire).

A response names thousands of digests. Building a protobuf Digest per digest and then copying it
into the response costs ~3x what serializing the request's own Digest messages and framing them
here does (`python bench/cas.py`), so the servicer hands these bytes to gRPC as they are (CODECS).
Tests check the bytes against protobuf's own encoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain

from services.common import wire
from services.common.rpc import Codec, passthrough
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.google.rpc import status_pb2

CODECS = {"FindMissingBlobs": Codec(response_serializer=passthrough),
          "BatchUpdateBlobs": Codec(response_serializer=passthrough)}

_SHORT = 0x80  # a length below this is one varint byte
_MISSING = 2  # FindMissingBlobsResponse.missing_blob_digests
_RESPONSES = 1  # BatchUpdateBlobsResponse.responses
_DIGEST, _STATUS = 1, 2  # BatchUpdateBlobsResponse.Response.digest, .status


def _heads(number: int) -> list[bytes]:
    """Tag and length of a length-delimited field `number`, for every length that fits one byte."""
    return [wire.tag(number, wire.LEN) + bytes((length,)) for length in range(_SHORT)]


_MISSING_HEADS, _DIGEST_HEADS, _RESPONSE_HEADS = _heads(_MISSING), _heads(_DIGEST), _heads(_RESPONSES)
_OK = wire.bytes_field(_STATUS, status_pb2.Status().SerializeToString())  # a present, empty Status


def _fields(number: int, heads: list[bytes], messages: list[bytes]) -> bytes:
    """`messages` as consecutive length-delimited fields `number`. With every length under 128 (all but
    SHA-512 digests) heads and messages are interleaved by a chain of C calls, no bytecode per message."""
    if max(map(len, messages), default=0) < _SHORT:
        return b"".join(chain.from_iterable(zip(map(heads.__getitem__, map(len, messages)), messages, strict=True)))
    return b"".join([wire.bytes_field(number, m) for m in messages])


def _field(number: int, heads: list[bytes], message: bytes) -> bytes:
    return heads[len(message)] + message if len(message) < _SHORT else wire.bytes_field(number, message)


def find_missing_response(missing: Iterable[re_pb2.Digest]) -> bytes:
    """A FindMissingBlobsResponse naming `missing` (the request's own Digest messages)."""
    return _fields(_MISSING, _MISSING_HEADS, list(map(re_pb2.Digest.SerializeToString, missing)))


def batch_update_response(digests: Iterable[re_pb2.Digest], statuses: Sequence[status_pb2.Status | None]) -> bytes:
    """A BatchUpdateBlobsResponse: one Response per digest, with its status (None: OK)."""
    responses = [_field(_DIGEST, _DIGEST_HEADS, digest) +
                 (_OK if status is None else wire.bytes_field(_STATUS, status.SerializeToString()))
                 for digest, status in zip(map(re_pb2.Digest.SerializeToString, digests), statuses, strict=True)]
    return _fields(_RESPONSES, _RESPONSE_HEADS, responses)
