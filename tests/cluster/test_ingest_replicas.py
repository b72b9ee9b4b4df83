"""Two metadata and two logs processes against one PostgreSQL ingest concurrent builds exactly."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg2
import pytest

from services.gen.api.v1 import invocation_pb2, target_pb2
from services.gen.api.v1 import service_pb2_grpc as api_grpc
from tests.bes.test_bes import FIXTURES, expected_log, log_text
from tests.cluster.processes import ClusterProcess
from tests.conftest import _drop_postgres_database, _postgres_database
from tests.support.bes import Publisher, decode, read_bep

pytestmark = pytest.mark.postgres
BUILDS = 6


@pytest.fixture
def database() -> Iterator[str]:
    name = f"bbapi_cluster_{uuid.uuid4().hex[:10]}"
    yield _postgres_database(name)
    _drop_postgres_database(name)


@pytest.fixture
def cluster(tmp_path: Path, database: str) -> Iterator[ClusterProcess]:
    running = ClusterProcess(tmp_path / "cluster", [
        "--gateways", "2", "--cas-shards", "1", "--replication", "1", "--metadata", "2", "--logs", "2",
        "--database", database, "--log-level", "warning"]).start()
    yield running
    assert running.stop() == 0


def test_concurrent_builds_with_broken_streams_are_stored_exactly_once(cluster: ClusterProcess,
                                                                        database: str) -> None:
    assert cluster.admin_key is not None
    events = read_bep(FIXTURES / "test_ci.bep")
    labels = {decode(e).id.target_configured.label for e in events if decode(e).id.HasField("target_configured")}
    builds = [str(uuid.uuid4()) for _ in range(BUILDS)]
    errors: list[str] = []

    def publish(invocation_id: str, breaks: bool) -> None:
        phase = "stream"
        try:
            start = 1
            if breaks:  # the retry runs on a new connection: likely another gateway and replicas
                phase = "broken stream"
                start = len(Publisher(cluster.grpc_target, cluster.admin_key)
                            .publish_and_break(invocation_id, events, after_acks=7)) + 1
                phase = f"retry from {start}"
            acked = Publisher(cluster.grpc_target, cluster.admin_key).publish(invocation_id, events, start=start)
            assert acked == list(range(start, len(events) + 2))
        except BaseException as err:
            errors.append(f"{invocation_id} ({phase}): {err!r}")

    threads = [threading.Thread(target=publish, args=(build, i % 2 == 0)) for i, build in enumerate(builds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    if errors:  # printed, not put in the assertion message, which pytest would shorten
        print(cluster.child_logs())  # the servers' own logs say why
    assert not errors

    stub = api_grpc.ApiServiceStub(grpc.insecure_channel(cluster.grpc_target))
    md = [("x-buildbuddy-api-key", cluster.admin_key)]
    connection = psycopg2.connect(database)
    for build in builds:
        found = stub.GetInvocation(invocation_pb2.GetInvocationRequest(
            selector=invocation_pb2.InvocationSelector(invocation_id=build)), metadata=md).invocation
        assert [i.invocationStatus for i in found] == [invocation_pb2.InvocationStatus.COMPLETE_INVOCATION_STATUS]
        targets = stub.GetTarget(target_pb2.GetTargetRequest(
            selector=target_pb2.TargetSelector(invocation_id=build)), metadata=md).target
        assert sorted(t.label for t in targets) == sorted(labels)
        with connection.cursor() as cursor:
            cursor.execute("SELECT e.sequence FROM invocation_events e JOIN invocations i ON i.id = e.invocation "
                           "WHERE i.invocation_id = %s ORDER BY e.sequence", (build,))
            assert [row[0] for row in cursor.fetchall()] == list(range(1, len(events) + 1))
        assert log_text(cluster.grpc_target, cluster.admin_key, build) == expected_log(events)
    connection.close()
