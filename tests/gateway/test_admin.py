"""The admin port: metrics and operational routes off the public port; readiness that follows
what the pod itself serves, so the cache keeps flowing while metadata restarts."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from services.allinone.settings import ServeSettings
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from tests.support.servers import StackServer


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    running = StackServer(ServeSettings(data_dir=tmp_path_factory.mktemp("bbapi"), host="127.0.0.1", grpc_port=0,
                                        http_port=0, admin_port=0, key_cache_seconds=60)).start()
    yield running
    running.stop()


def admin_url(server: StackServer) -> str:
    assert server.running is not None and server.running.gateway.admin is not None
    return f"http://127.0.0.1:{server.running.gateway.admin.port}"


def test_metrics_are_on_the_admin_port_only(server: StackServer) -> None:
    assert httpx.get(f"{server.http_url}/metrics").status_code == 404
    metrics = httpx.get(f"{admin_url(server)}/metrics")
    assert metrics.status_code == 200 and "bbapi_" in metrics.text
    assert httpx.get(f"{admin_url(server)}/api/v1/GetInvocation").status_code == 404  # nothing public there
    for url in (server.http_url, admin_url(server)):
        assert httpx.get(f"{url}/readyz").json()["ready"] is True


def test_without_an_admin_port_everything_stays_on_the_public_port(tmp_path_factory: pytest.TempPathFactory) -> None:
    plain = StackServer(ServeSettings(data_dir=tmp_path_factory.mktemp("bbapi"), host="127.0.0.1", grpc_port=0,
                                      http_port=0)).start()
    try:
        assert plain.running is not None and plain.running.gateway.admin is None
        assert httpx.get(f"{plain.http_url}/metrics").status_code == 200
    finally:
        plain.stop()


def test_a_metadata_outage_leaves_the_gateway_ready_and_the_cache_flowing(server: StackServer) -> None:
    key = server.admin_key
    with grpc.insecure_channel(server.grpc_target) as channel:
        cas = re_grpc.ContentAddressableStorageStub(channel)
        request = re_pb2.FindMissingBlobsRequest(blob_digests=[re_pb2.Digest(hash="a" * 64, size_bytes=1)])
        cas.FindMissingBlobs(request, metadata=[("x-buildbuddy-api-key", key)], timeout=10)  # the key is now known
        server.call(lambda stack: stack.metadata.stop())
        readiness = httpx.get(f"{admin_url(server)}/readyz")
        assert readiness.status_code == 200, readiness.text
        assert readiness.json()["checks"]["metadata"] is False and readiness.json()["required"] == ["cas", "accepting"]
        missing = cas.FindMissingBlobs(request, metadata=[("x-buildbuddy-api-key", key)], timeout=10)
        assert [d.hash for d in missing.missing_blob_digests] == ["a" * 64]
