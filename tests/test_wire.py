"""The hand-framed bulk messages must be byte-for-byte what protobuf reads and writes."""

from __future__ import annotations

import os

import pytest
from google.protobuf.message import DecodeError

from services.blobstore.remote import codec as cas_codec
from services.common import wire
from services.common.hashing import DigestFunction, hash_hex
from services.gateway import cas_wire
from services.gateway.bytestream import decode_write_request, encode_read_response
from services.gen.bbapi.internal.v1 import cas_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from services.gen.google.rpc import status_pb2


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16384, 300_000])
def test_read_responses_match_protobuf(size: int) -> None:
    data = os.urandom(size)
    assert bs_pb2.ReadResponse.FromString(encode_read_response(data)).data == data
    assert cas_pb2.ReadResponse.FromString(cas_codec.encode_read(data)).data == data
    assert cas_codec.decode_read(cas_pb2.ReadResponse(data=data).SerializeToString()) == data


@pytest.mark.parametrize("offset", [0, 1, 300, 2**40, -5])
def test_write_requests_decode_like_protobuf(offset: int) -> None:
    message = bs_pb2.WriteRequest(resource_name="inst/uploads/u/blobs/x/1", write_offset=offset,
                                  finish_write=True, data=os.urandom(2000))
    decoded = decode_write_request(message.SerializeToString())
    assert (decoded.resource_name, decoded.write_offset, decoded.finish_write, decoded.data) == \
        (message.resource_name, message.write_offset, message.finish_write, message.data)
    assert decode_write_request(bs_pb2.WriteRequest().SerializeToString()).data == b""


def test_internal_write_messages() -> None:
    header = cas_pb2.WriteRequest(scope=cas_pb2.Scope(tenant="t"), digest=re_pb2.Digest(hash="a" * 64, size_bytes=3),
                                  data=b"abc")
    decoded = cas_codec.decode_write(header.SerializeToString())
    assert decoded.header == header and decoded.data == b"abc"
    data = os.urandom(70_000)
    only_data = cas_codec.decode_write(cas_codec.encode_write_data(data))
    assert only_data.header is None and only_data.data == data
    assert cas_pb2.WriteRequest.FromString(cas_codec.encode_write_data(data)).data == data


def test_varints_and_malformed_input() -> None:
    for value in (0, 1, 127, 128, 2**32, 2**63 - 1, -1):
        assert wire.int64(next(wire.fields(wire.tag(2, wire.VARINT) + wire.varint(value)))[1]) == value  # type: ignore[arg-type]
    for bad in (b"\x52\x05abc", b"\x80", b"\x00\x01", b"\x53"):
        with pytest.raises(DecodeError):
            list(wire.fields(bad))


@pytest.mark.parametrize("function", list(DigestFunction))
def test_cas_batch_responses_are_protobuf_s_own_encoding(function: DigestFunction) -> None:
    digests = [re_pb2.Digest(hash=hash_hex(function, os.urandom(8)), size_bytes=size)
               for size in (0, 1, 127, 128, 2**40)]
    missing = re_pb2.FindMissingBlobsResponse(missing_blob_digests=digests)
    assert cas_wire.find_missing_response(digests) == missing.SerializeToString()
    assert cas_wire.find_missing_response([]) == b""
    statuses = [None, status_pb2.Status(code=3, message="hash mismatch " * 20), None, status_pb2.Status(code=8), None]
    updated = re_pb2.BatchUpdateBlobsResponse(responses=[
        re_pb2.BatchUpdateBlobsResponse.Response(digest=d, status=s or status_pb2.Status())
        for d, s in zip(digests, statuses, strict=True)])
    assert cas_wire.batch_update_response(digests, statuses) == updated.SerializeToString()
