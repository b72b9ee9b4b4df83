"""Bazel's retries against a gateway whose metadata and logs services run in other processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bes.test_bes import FIXTURES, expected_log, log_text
from tests.cluster.processes import ClusterProcess
from tests.support.bes import Publisher, progress, read_bep


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    running = ClusterProcess(tmp_path / "cluster", [
        "--gateways", "1", "--cas-shards", "1", "--replication", "1", "--log-level", "warning"]).start()
    yield running
    assert running.stop() == 0


def test_re_sent_events_the_services_already_hold_are_all_acknowledged(cluster: ClusterProcess) -> None:
    """When only the acks were lost, a retry is durable from the moment it opens, while its re-sent
    events are still being forwarded: the stream's finish must wait for those writes (a second write
    on a backend call fails, and Bazel saw INTERNAL). Large events keep the writes in flight."""
    assert cluster.admin_key is not None
    fixture = read_bep(FIXTURES / "test_ci.bep")
    events = [*fixture[:-1], *(progress(stderr="x" * 4_000_000) for _ in range(2)), fixture[-1]]
    publisher = Publisher(cluster.grpc_target, cluster.admin_key)
    for _ in range(4):
        invocation_id = str(uuid.uuid4())
        assert publisher.publish(invocation_id, events) == list(range(1, len(events) + 2))
        for start in (1, 8, 20):
            assert publisher.publish(invocation_id, events, start=start) == list(range(start, len(events) + 2))
        assert log_text(cluster.grpc_target, cluster.admin_key, invocation_id) == expected_log(events)
