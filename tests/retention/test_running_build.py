"""Retention on a running server: a build still streaming through the BES port outlives its expired
neighbours and completes; the logs janitor asks the metadata service over its internal contract."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.auth import Capability
from services.common.durations import Duration
from services.gen.api.v1 import invocation_pb2, log_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2
from services.metadata import keys
from services.metadata.retention import policies
from tests.bes.conftest import server as server  # the running stack, on SQLite and on PostgreSQL
from tests.bes.test_bes import FIXTURES, api, expected_log, invocation, log_text
from tests.retention.support import idle_invocation, idle_log
from tests.support.bes import Publisher, read_bep, request
from tests.support.servers import StackServer


class HeldBuild:
    """A build streaming through the BES port that stops after `held` events until released."""

    def __init__(self, publisher: Publisher, invocation_id: str, events: list[bytes], held: int) -> None:
        self.release, self.acked = threading.Event(), threading.Event()
        self.acks: list[int] = []
        self.held, self.events, self.invocation_id = held, events, invocation_id
        self.call = publisher.stub.PublishBuildToolEventStream(self._requests(), metadata=publisher.metadata)
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _requests(self) -> Iterator[pbe_pb2.PublishBuildToolEventStreamRequest]:
        for sequence, event in enumerate(self.events, start=1):
            if sequence == self.held + 1:
                self.release.wait(60)
            yield request(self.invocation_id, sequence, event)
        yield request(self.invocation_id, len(self.events) + 1, None)

    def _read(self) -> None:
        for response in self.call:
            self.acks.append(response.sequence_number)
            if len(self.acks) == self.held:
                self.acked.set()

    def finish(self) -> list[int]:
        self.release.set()
        self.reader.join(60)
        return self.acks


def age(server: StackServer, tenant: str, invocation_id: str, started_only: bool = False) -> None:
    """Make a build two days old: its start, and unless `started_only` its last activity and its log's."""
    server.call(lambda s: idle_invocation(s.metadata.sessions, tenant, invocation_id, 2, started_only=started_only))
    if not started_only:
        server.call(lambda s: idle_log(s.logs.store.sessions, tenant, invocation_id, 2))


def metric(server: StackServer, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{server.http_url}/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture(scope="module")
def events() -> list[bytes]:
    return read_bep(FIXTURES / "test_ci.bep")


def test_a_running_build_outlives_its_expired_neighbours_and_completes(server: StackServer,
                                                                       events: list[bytes]) -> None:
    tenant, other = f"ret-{uuid.uuid4().hex[:8]}", f"ret-{uuid.uuid4().hex[:8]}"
    key = server.call(lambda s: keys.create_key(s.metadata.sessions, tenant, Capability.CACHE_WRITE))[1]
    other_key = server.call(lambda s: keys.create_key(s.metadata.sessions, other, Capability.CACHE_WRITE))[1]
    server.call(lambda s: policies.set_override(s.metadata.sessions, tenant, invocations=Duration.parse("1d")))
    neighbours = [str(uuid.uuid4()) for _ in range(2)]
    for name in neighbours:
        Publisher(server.grpc_target, key).publish(name, events)
    untouched = str(uuid.uuid4())
    Publisher(server.grpc_target, other_key).publish(untouched, events)
    running = HeldBuild(Publisher(server.grpc_target, key), str(uuid.uuid4()), events, held=len(events) // 2)
    assert running.acked.wait(60), "the first half of the running build was acknowledged"
    age(server, tenant, running.invocation_id, started_only=True)  # started 2 days ago, streaming now
    for tenant_of, name in ((other, untouched), *((tenant, n) for n in neighbours)):
        age(server, tenant_of, name)
    deleted_before = metric(server, "bbapi_retention_deleted_rows_total", table="invocations")

    server.call(lambda s: s.metadata.janitor.run_once())
    server.call(lambda s: s.logs.janitor.run_once())

    stub, md = api(server.grpc_target, key)
    for name in neighbours:
        assert invocation(server, key, name) is None
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetLog(log_pb2.GetLogRequest(selector=log_pb2.LogSelector(invocation_id=name)), metadata=md)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert invocation(server, other_key, untouched) is not None, "another tenant's data is untouched"
    assert log_text(server.grpc_target, other_key, untouched) == expected_log(events)
    assert metric(server, "bbapi_retention_deleted_rows_total", table="invocations") == deleted_before + 2
    assert metric(server, "bbapi_retention_last_run_timestamp_seconds", janitor="logs") > 0

    assert running.finish() == list(range(1, len(events) + 2))
    completed = invocation(server, key, running.invocation_id)
    assert completed is not None
    assert completed.invocationStatus == invocation_pb2.InvocationStatus.COMPLETE_INVOCATION_STATUS
    assert log_text(server.grpc_target, key, running.invocation_id) == expected_log(events)
