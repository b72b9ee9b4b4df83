"""A build's event stream through `bbapi cluster` while the processes behind the gateway die and come back."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.gen.api.v1 import invocation_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2_grpc as pbe_grpc
from tests.bes.test_bes import FIXTURES, expected_log, log_text
from tests.cluster.processes import ClusterProcess, wait_for
from tests.cluster.test_cluster import process
from tests.invocations.support import FAKE_KEY
from tests.support.bes import Publisher, progress, read_bep, request

PACE = 0.02  # seconds between events: the stream is still going when the victim dies


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    running = ClusterProcess(tmp_path / "cluster", [
        "--gateways", "1", "--cas-shards", "1", "--replication", "1", "--restart-delay-seconds", "1",
        "--log-level", "warning"]).start()
    yield running
    assert running.stop() == 0


def long_build(key: str) -> list[bytes]:
    """The recorded build with 100 more Progress events, its API key only in the options text."""
    fixture = [e.replace(FAKE_KEY.encode(), key.encode()) for e in read_bep(FIXTURES / "test_ci.bep")]
    return [*fixture[:-1], *(progress(stderr=f"step {n}\n") for n in range(100)), fixture[-1]]


def paced(invocation_id: str, build_id: str, events: list[bytes], start: int = 1
          ) -> Iterator[pbe_pb2.PublishBuildToolEventStreamRequest]:
    for sequence in range(start, len(events) + 1):
        time.sleep(PACE)
        yield request(invocation_id, sequence, events[sequence - 1], build_id)
    yield request(invocation_id, len(events) + 1, None, build_id)


def kill(cluster: ClusterProcess, name: str) -> None:
    os.kill(process(cluster, name)["pid"], signal.SIGKILL)


def status(cluster: ClusterProcess, key: str, invocation_id: str) -> int:
    from tests.bes.test_bes import api

    stub, md = api(cluster.grpc_target, key)
    found = stub.GetInvocation(invocation_pb2.GetInvocationRequest(
        selector=invocation_pb2.InvocationSelector(invocation_id=invocation_id)), metadata=md).invocation
    return int(found[0].invocationStatus)


@pytest.mark.parametrize("victim", ["metadata-0", "logs-0"])
def test_a_backend_killed_mid_stream_holds_the_stream_and_loses_nothing(cluster: ClusterProcess,
                                                                        victim: str) -> None:
    assert cluster.admin_key is not None
    events = long_build(cluster.admin_key)
    invocation_id = str(uuid.uuid4())
    acks: list[int] = []
    with grpc.insecure_channel(cluster.grpc_target) as channel:
        for response in pbe_grpc.PublishBuildEventStub(channel).PublishBuildToolEventStream(
                paced(invocation_id, str(uuid.uuid4()), events)):
            if not acks:
                kill(cluster, victim)
            acks.append(response.sequence_number)
    assert acks == list(range(1, len(events) + 2))  # every event once, in order, none refused
    assert process(cluster, victim)["restarts"] == 1
    assert status(cluster, cluster.admin_key, invocation_id) == invocation_pb2.COMPLETE_INVOCATION_STATUS
    assert log_text(cluster.grpc_target, cluster.admin_key, invocation_id) == expected_log(events)


def test_after_a_gateway_restart_a_key_less_retry_resumes_by_build_id(cluster: ClusterProcess) -> None:
    """Bazel 4 with the key only in --remote_header: its retry (from the first unacknowledged event) has no key.
    The gateway that saw the key is gone; the restarted one knows the build from the database."""
    assert cluster.admin_key is not None
    events = long_build(cluster.admin_key)
    invocation_id, build_id = str(uuid.uuid4()), str(uuid.uuid4())
    acks: list[int] = []
    killed = False
    with grpc.insecure_channel(cluster.grpc_target) as channel, pytest.raises(grpc.RpcError) as broken:
        for response in pbe_grpc.PublishBuildEventStub(channel).PublishBuildToolEventStream(
                paced(invocation_id, build_id, events)):
            acks.append(response.sequence_number)
            if response.sequence_number >= 10 and not killed:
                kill(cluster, "gateway-0")
                killed = True
    assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
    wait_for(lambda: process(cluster, "gateway-0")["pid"] is not None and _answers(cluster), what="gateway restart")
    resumed = Publisher(cluster.grpc_target, None, build_id).publish(invocation_id, events, start=acks[-1] + 1)
    assert resumed == list(range(acks[-1] + 1, len(events) + 2))
    assert log_text(cluster.grpc_target, cluster.admin_key, invocation_id) == expected_log(events)
    with pytest.raises(grpc.RpcError) as refused:  # the invocation id alone opens nothing
        Publisher(cluster.grpc_target, None, "another-build").publish(invocation_id, events, start=acks[-1] + 1)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _answers(cluster: ClusterProcess) -> bool:
    try:
        with grpc.insecure_channel(cluster.grpc_target) as channel:
            grpc.channel_ready_future(channel).result(timeout=1)
        return True
    except grpc.FutureTimeoutError:
        return False
