"""Wire compatibility with BuildBuddy's own api.v1 protos, checked by field number, not by our classes.

A client generated from upstream's .proto files reads bbapi's binary answers by number; these tests
walk the bytes with services.common.wire.fields and the numbers upstream assigns, so a number that
drifts in our proto fails here even though our own generated code would still round-trip it.
"""

from __future__ import annotations

import uuid

import grpc
import pytest

from services.common import wire
from services.gen.api.v1 import invocation_pb2
from tests.invocations.support import finished, metadata, started
from tests.support.bes import Publisher
from tests.support.servers import Http, StackServer

# upstream's numbers: GetInvocationResponse.invocation = 1; Invocation.id = 1, invocationStatus = 25,
# child_invocations = 26; Invocation.Id.invocation_id = 1; COMPLETE_INVOCATION_STATUS = 1
RESPONSE_INVOCATION, INVOCATION_ID, INVOCATION_STATUS, CHILD_INVOCATIONS, ID_VALUE = 1, 1, 25, 26, 1
COMPLETE = 1


def publish(server: StackServer, **build_metadata: str) -> str:
    invocation_id = str(uuid.uuid4())
    events = [started(invocation_id), metadata(**build_metadata), finished()]
    with Publisher(server.grpc_target, server.admin_key) as publisher:
        publisher.publish(invocation_id, [e.SerializeToString() for e in events])
    return invocation_id


def by_upstream_numbers(answer: bytes) -> list[tuple[str, int, list[str]]]:
    """(invocation id, status, child ids) of each invocation in a binary GetInvocationResponse."""
    found = []
    for number, invocation in wire.fields(answer):
        if number != RESPONSE_INVOCATION:
            continue
        assert isinstance(invocation, memoryview)
        own, status, children = "", 0, []
        for field, value in wire.fields(invocation):
            if field == INVOCATION_ID and isinstance(value, memoryview):
                own = _id(value)
            elif field == INVOCATION_STATUS:
                assert isinstance(value, int), "invocationStatus is an enum (varint)"
                status = value
            elif field == CHILD_INVOCATIONS and isinstance(value, memoryview):
                children.append(_id(value))
        found.append((own, status, children))
    return found


def _id(message: memoryview) -> str:
    return next(bytes(v).decode() for n, v in wire.fields(message) if n == ID_VALUE and isinstance(v, memoryview))


@pytest.fixture(scope="module")
def family(server: StackServer) -> tuple[str, str]:
    parent = publish(server, ROLE="CI")
    child = publish(server, PARENT_INVOCATION_ID=parent)
    return parent, child


def test_binary_get_invocation_over_http_has_status_25_and_children_26(http: Http, family: tuple[str, str]) -> None:
    parent, child = family
    body = invocation_pb2.GetInvocationRequest(selector=invocation_pb2.InvocationSelector(invocation_id=parent),
                                               include_child_invocations=True).SerializeToString()
    answer = http("GetInvocation", content=body, headers={"content-type": "application/protobuf"})
    assert answer.status_code == 200
    assert by_upstream_numbers(answer.content) == [(parent, COMPLETE, [child])]


def test_binary_get_invocation_over_grpc_has_status_25_and_children_26(server: StackServer,
                                                                       family: tuple[str, str]) -> None:
    parent, child = family
    with grpc.insecure_channel(server.grpc_target) as channel:
        raw = channel.unary_unary("/api.v1.ApiService/GetInvocation",
                                  request_serializer=invocation_pb2.GetInvocationRequest.SerializeToString,
                                  response_deserializer=lambda data: data)
        answer = raw(invocation_pb2.GetInvocationRequest(
            selector=invocation_pb2.InvocationSelector(invocation_id=parent), include_child_invocations=True),
            metadata=[("x-buildbuddy-api-key", server.admin_key)])
    assert by_upstream_numbers(answer) == [(parent, COMPLETE, [child])]


def test_json_keeps_upstream_spelling_of_invocation_status(http: Http, family: tuple[str, str]) -> None:
    parent, _child = family
    [invocation] = http("GetInvocation", {"selector": {"invocationId": parent}}).json()["invocation"]
    assert invocation["invocationStatus"] == "COMPLETE_INVOCATION_STATUS"
