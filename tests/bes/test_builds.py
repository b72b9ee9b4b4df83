"""One invocation is one build: a key-less retry of the same build resumes it, another build is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
import pytest

from services.common.auth import Capability
from services.gen.api.v1 import invocation_pb2, target_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2_grpc as pbe_grpc
from tests.bes.test_bes import FIXTURES, api, expected_log, invocation, log_text
from tests.invocations.support import FAKE_KEY
from tests.support.bes import Publisher, progress, read_bep, request
from tests.support.servers import StackServer

RESUME_AT = 10  # the options (and with them the key) are in events 1-6: a retry from here carries no key


@pytest.fixture(scope="module")
def events() -> list[bytes]:
    return read_bep(FIXTURES / "test_ci.bep")


def keyed(events: list[bytes], key: str) -> list[bytes]:
    with_key = [e.replace(FAKE_KEY.encode(), key.encode()) for e in events]
    assert key.encode() in b"".join(with_key[:RESUME_AT]) and key.encode() not in b"".join(with_key[RESUME_AT:])
    return with_key


def acks_until_refused(target: str, key: str | None, build_id: str, invocation_id: str, events: list[bytes],
                       start: int = 1) -> tuple[list[int], grpc.StatusCode]:
    """Stream events[start-1:] and the end marker; the acks received before the call failed, and its code."""
    requests = [request(invocation_id, n, events[n - 1], build_id) for n in range(start, len(events) + 1)]
    requests.append(request(invocation_id, len(events) + 1, None, build_id))
    metadata = [("x-buildbuddy-api-key", key)] if key else []
    acks: list[int] = []
    with grpc.insecure_channel(target) as channel:
        try:
            for response in pbe_grpc.PublishBuildEventStub(channel).PublishBuildToolEventStream(
                    iter(requests), metadata=metadata):
                acks.append(response.sequence_number)
        except grpc.RpcError as err:
            return acks, err.code()
    return acks, grpc.StatusCode.OK


def labels(server: StackServer, key: str, invocation_id: str) -> list[str]:
    stub, md = api(server.grpc_target, key)
    return [t.label for t in stub.GetTarget(target_pb2.GetTargetRequest(
        selector=target_pb2.TargetSelector(invocation_id=invocation_id)), metadata=md).target]


def test_a_retry_whose_key_was_only_in_the_options_text_resumes_by_its_build_id(
        server: StackServer, events: list[bytes], make_key: Callable[..., str]) -> None:
    key = make_key("options-retry", Capability.READ)
    build = keyed(events, key)
    invocation_id, build_id = str(uuid.uuid4()), str(uuid.uuid4())
    bazel = Publisher(server.grpc_target, None, build_id)
    # the first attempt breaks off after RESUME_AT - 1 events (no end marker: the stream just ends)
    assert bazel.publish(invocation_id, build[:RESUME_AT - 1], finish=False) == list(range(1, RESUME_AT))

    # without the build_id, knowing the invocation id is not enough
    intruder = Publisher(server.grpc_target, None, "guessed-" + build_id)
    with pytest.raises(grpc.RpcError) as refused:
        intruder.publish(invocation_id, build, start=RESUME_AT)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    assert bazel.publish(invocation_id, build, start=RESUME_AT) == list(range(RESUME_AT, len(build) + 2))
    stored = invocation(server, key, invocation_id)
    assert stored is not None and stored.invocationStatus == invocation_pb2.InvocationStatus.COMPLETE_INVOCATION_STATUS
    assert log_text(server.grpc_target, key, invocation_id) == expected_log(build)
    assert len(labels(server, key, invocation_id)) == len(set(labels(server, key, invocation_id))) == 6
    # a retry of a stream that had no end marker yet, and re-sent events after completion, still resume
    assert bazel.publish(invocation_id, build, start=RESUME_AT + 5) == list(range(RESUME_AT + 5, len(build) + 2))


def test_a_build_id_binding_is_refused_once_its_key_is_revoked(server: StackServer, events: list[bytes],
                                                               make_key: Callable[..., str]) -> None:
    from services.metadata import keys

    key = make_key("revoked-retry", Capability.READ)
    build = keyed(events, key)
    invocation_id, build_id = str(uuid.uuid4()), str(uuid.uuid4())
    bazel = Publisher(server.grpc_target, None, build_id)
    assert bazel.publish(invocation_id, build[:RESUME_AT - 1], finish=False)[-1] == RESUME_AT - 1
    key_id = server.call(lambda s: keys.list_keys(s.metadata.sessions, "revoked-retry"))[0].id
    server.call(lambda s: keys.revoke_key(s.metadata.sessions, key_id))
    with pytest.raises(grpc.RpcError) as refused:
        bazel.publish(invocation_id, build, start=RESUME_AT)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("second_build", ["fewer events", "more events"])
def test_a_second_build_reusing_an_invocation_id_is_refused_before_any_ack(
        server: StackServer, events: list[bytes], second_build: str) -> None:
    """Bazel's --invocation_id given to two builds: the second (its own build_id) gets ALREADY_EXISTS before a
    single ack, so it never believes events were stored; the first build's record stays exactly as it was."""
    key = server.admin_key
    invocation_id = str(uuid.uuid4())
    assert Publisher(server.grpc_target, key, str(uuid.uuid4())).publish(invocation_id, events)[-1] == len(events) + 1
    other = (events[:12] if second_build == "fewer events"
             else [*events[:-1], *(progress(stderr=f"second build {n}\n") for n in range(40)), events[-1]])
    acks, code = acks_until_refused(server.grpc_target, key, str(uuid.uuid4()), invocation_id, other)
    assert (acks, code) == ([], grpc.StatusCode.ALREADY_EXISTS)
    stored = invocation(server, key, invocation_id)
    assert stored is not None and stored.invocationStatus == invocation_pb2.InvocationStatus.COMPLETE_INVOCATION_STATUS
    assert log_text(server.grpc_target, key, invocation_id) == expected_log(events)
    assert len(labels(server, key, invocation_id)) == 6


def test_a_second_build_reusing_an_unfinished_invocation_id_is_refused_too(server: StackServer,
                                                                          events: list[bytes]) -> None:
    key = server.admin_key
    invocation_id = str(uuid.uuid4())
    first = Publisher(server.grpc_target, key, str(uuid.uuid4()))
    assert first.publish(invocation_id, events[:20], finish=False)[-1] == 20
    acks, code = acks_until_refused(server.grpc_target, key, str(uuid.uuid4()), invocation_id, events)
    assert (acks, code) == ([], grpc.StatusCode.ALREADY_EXISTS)
    assert first.publish(invocation_id, events, start=21) == list(range(21, len(events) + 2))  # its own retry works
    assert log_text(server.grpc_target, key, invocation_id) == expected_log(events)
