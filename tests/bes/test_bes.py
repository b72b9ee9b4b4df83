"""The Build Event Service through the public port: auth, durable acks, retries, bad input."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import grpc
import psycopg2
import pytest

from services.common.auth import Capability
from services.gen.api.v1 import invocation_pb2, log_pb2, target_pb2
from services.gen.api.v1 import service_pb2_grpc as api_grpc
from services.gen.build_event_stream import build_event_stream_pb2 as bep_pb2
from tests.invocations.support import FAKE_KEY
from tests.invocations.support import FIXTURES as FIXTURES  # re-exported: other suites replay these recordings
from tests.support.bes import Publisher, progress, read_bep, request
from tests.support.servers import StackServer


@pytest.fixture(scope="module")
def events() -> list[bytes]:
    return read_bep(FIXTURES / "test_ci.bep")


def api(target: str, key: str) -> tuple[api_grpc.ApiServiceStub, list[tuple[str, str]]]:
    return api_grpc.ApiServiceStub(grpc.insecure_channel(target)), [("x-buildbuddy-api-key", key)]


def invocation(server: StackServer, key: str, invocation_id: str) -> invocation_pb2.Invocation | None:
    stub, md = api(server.grpc_target, key)
    found = stub.GetInvocation(invocation_pb2.GetInvocationRequest(
        selector=invocation_pb2.InvocationSelector(invocation_id=invocation_id)), metadata=md).invocation
    return found[0] if found else None


def log_text(target: str, key: str, invocation_id: str) -> str:
    stub, md = api(target, key)
    text, token = [], ""
    while True:
        page = stub.GetLog(log_pb2.GetLogRequest(selector=log_pb2.LogSelector(invocation_id=invocation_id),
                                                 page_token=token), metadata=md)
        text.append(page.log.contents)
        if not page.next_page_token or page.next_page_token == token:
            return "".join(text)
        token = page.next_page_token


def database_contains(server: StackServer, needle: str) -> bool:
    """Whether any stored byte (every table, every column; the files for SQLite) holds `needle`."""
    if not server.settings.database:
        return any(needle.encode() in path.read_bytes() for path in server.settings.data_dir.glob("*.db*"))
    connection = psycopg2.connect(server.settings.database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_schema = 'public'")
            for table, column in cursor.fetchall():
                cursor.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s '
                               f'OR "{column}"::text LIKE %s', (f"%{needle}%", f"%{needle.encode().hex()}%"))
                if cursor.fetchone()[0]:  # type: ignore[index]
                    return True
    finally:
        connection.close()
    return False


def expected_log(events: list[bytes]) -> str:
    parts = []
    for raw in events:
        event = bep_pb2.BuildEvent.FromString(raw)
        if event.HasField("progress"):
            parts += [event.progress.stderr, event.progress.stdout]
    return "".join(parts)


def test_a_whole_build_is_acknowledged_in_order_and_recorded(server: StackServer, events: list[bytes]) -> None:
    invocation_id = str(uuid.uuid4())
    publisher = Publisher(server.grpc_target, server.admin_key)
    acked = publisher.publish(invocation_id, events)
    assert acked == list(range(1, len(events) + 2))
    stored = invocation(server, server.admin_key, invocation_id)
    assert stored is not None
    assert stored.invocationStatus == invocation_pb2.InvocationStatus.COMPLETE_INVOCATION_STATUS
    assert stored.command == "test" and stored.bazel_exit_code == "TESTS_FAILED"
    assert log_text(server.grpc_target, server.admin_key, invocation_id) == expected_log(events)
    stub, md = api(server.grpc_target, server.admin_key)
    targets = stub.GetTarget(target_pb2.GetTargetRequest(selector=target_pb2.TargetSelector(
        invocation_id=invocation_id)), metadata=md).target
    assert {t.label for t in targets} >= {"//:passing_test", "//:failing_test", "//:sharded_test"}


def test_key_in_options_text_authenticates_and_is_redacted(server: StackServer, events: list[bytes],
                                                           make_key: Callable[..., str]) -> None:
    key = make_key("options-tenant", Capability.CACHE_WRITE)
    with_key = [e.replace(FAKE_KEY.encode(), key.encode()) for e in events]
    invocation_id = str(uuid.uuid4())
    acked = Publisher(server.grpc_target, None).publish(invocation_id, with_key)
    assert acked[-1] == len(events) + 1
    stored = invocation(server, key, invocation_id)
    assert stored is not None
    assert invocation(server, server.admin_key, invocation_id) is None  # another tenant: missing
    assert not database_contains(server, key)
    assert database_contains(server, "options-tenant")  # the check itself can see stored data


def test_a_key_in_console_text_is_redacted_in_the_log_and_stored_nowhere(server: StackServer,
                                                                        events: list[bytes]) -> None:
    invocation_id = str(uuid.uuid4())
    secret = "ConsoleKey0123456789"
    leaky = progress(stderr=f"fetching grpc://{secret}@cache.example\n", stdout=f"x-buildbuddy-api-key={secret}\n")
    acked = Publisher(server.grpc_target, server.admin_key).publish(invocation_id, [events[0], leaky, *events[1:]])
    assert acked[-1] == len(events) + 2
    text = log_text(server.grpc_target, server.admin_key, invocation_id)
    assert "grpc://<REDACTED>@cache.example" in text and "x-buildbuddy-api-key=<REDACTED>" in text
    assert secret not in text
    assert not database_contains(server, secret)
    assert database_contains(server, "cache.example")  # the check itself can see the stored log


def test_streams_without_a_key_are_refused(server: StackServer, events: list[bytes]) -> None:
    anonymous = [e.replace(FAKE_KEY.encode(), b"x" * 20) for e in events]
    with pytest.raises(grpc.RpcError) as info:
        Publisher(server.grpc_target, None).publish(str(uuid.uuid4()), anonymous)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_broken_stream_is_disconnected_and_a_retry_completes_it_exactly_once(
        server: StackServer, events: list[bytes]) -> None:
    invocation_id = str(uuid.uuid4())
    publisher = Publisher(server.grpc_target, server.admin_key)
    acked = publisher.publish_and_break(invocation_id, events, after_acks=5)
    assert acked[:5] == [1, 2, 3, 4, 5]
    stored = invocation(server, server.admin_key, invocation_id)
    assert stored is not None  # queryable while (and after) streaming
    assert stored.invocationStatus in (invocation_pb2.InvocationStatus.DISCONNECTED_INVOCATION_STATUS,
                                        invocation_pb2.InvocationStatus.PARTIAL_INVOCATION_STATUS)
    resumed = publisher.publish(invocation_id, events, start=len(acked) + 1)
    assert resumed == list(range(len(acked) + 1, len(events) + 2))
    stored = invocation(server, server.admin_key, invocation_id)
    assert stored is not None
    assert stored.invocationStatus == invocation_pb2.InvocationStatus.COMPLETE_INVOCATION_STATUS
    assert log_text(server.grpc_target, server.admin_key, invocation_id) == expected_log(events)
    # Bazel re-sending events whose acks were lost is harmless; new events after completion are not
    assert publisher.publish(invocation_id, events, start=3)[-1] == len(events) + 1
    with pytest.raises(grpc.RpcError) as info:
        publisher.publish(invocation_id, [*events, progress(stderr="late")], start=len(events) + 1)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_streams_broken_anywhere_never_stall_their_retries(server: StackServer, events: list[bytes]) -> None:
    """Bazel hanging up while its events are being committed cancels the services' transactions; none of
    them may keep the database locked for the retry (once, a retry waited for the lock until Bazel gave up)."""
    build = [*events[:-1], *(progress(stderr=f"{n:07d}" * 30_000) for n in range(30)), events[-1]]
    publisher = Publisher(server.grpc_target, server.admin_key)
    for after_acks in range(1, len(build), 4):
        invocation_id = str(uuid.uuid4())
        acked = publisher.publish_and_break(invocation_id, build, after_acks)
        requests = [request(invocation_id, n, build[n - 1]) for n in range(len(acked) + 1, len(build) + 1)]
        responses = publisher.stub.PublishBuildToolEventStream(
            iter([*requests, request(invocation_id, len(build) + 1, None)]), metadata=publisher.metadata,
            timeout=20)  # far below the 30 s a writer waits for a held lock
        assert [r.sequence_number for r in responses] == list(range(len(acked) + 1, len(build) + 2))
        assert log_text(server.grpc_target, server.admin_key, invocation_id) == expected_log(build)


@pytest.mark.parametrize(("mangle", "code"), [
    (lambda reqs: [reqs[0], reqs[2]], grpc.StatusCode.INVALID_ARGUMENT),  # gap
    (lambda reqs: [reqs[0], _without_event(reqs[1])], grpc.StatusCode.INVALID_ARGUMENT),
    (lambda reqs: [reqs[0], _payload(reqs[1], b"\xff\xff\xff")], grpc.StatusCode.INVALID_ARGUMENT),
])
def test_bad_streams_get_clear_errors(server: StackServer, events: list[bytes], mangle: Callable[..., list[object]],
                                      code: grpc.StatusCode) -> None:
    invocation_id = str(uuid.uuid4())
    reqs = [request(invocation_id, i, e) for i, e in enumerate(events[:3], start=1)]
    publisher = Publisher(server.grpc_target, server.admin_key)
    with pytest.raises(grpc.RpcError) as info:
        list(publisher.stub.PublishBuildToolEventStream(iter(mangle(reqs)), metadata=publisher.metadata))
    assert info.value.code() == code


def test_invocation_ids_must_be_uuids(server: StackServer, events: list[bytes]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        Publisher(server.grpc_target, server.admin_key).publish("not-a-uuid", events[:3])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _without_event(req: object) -> object:
    req.ordered_build_event.ClearField("event")  # type: ignore[attr-defined]
    return req


def _payload(req: object, value: bytes) -> object:
    req.ordered_build_event.event.bazel_event.value = value  # type: ignore[attr-defined]
    return req


def test_huge_progress_and_concurrent_builds_keep_their_own_logs(server: StackServer,
                                                                 events: list[bytes]) -> None:
    big = "x" * (5 * 1024 * 1024 - 3) + "end"
    runs = {str(uuid.uuid4()): [events[0], progress(stderr=f"build {n}\n" * 2000), progress(stdout=big), *events[1:]]
            for n in range(3)}
    errors: list[BaseException] = []

    def publish(invocation_id: str, stream: list[bytes]) -> None:
        try:
            Publisher(server.grpc_target, server.admin_key).publish(invocation_id, stream)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=publish, args=item) for item in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    for invocation_id, stream in runs.items():
        assert log_text(server.grpc_target, server.admin_key, invocation_id) == expected_log(stream)
