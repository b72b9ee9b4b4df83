"""Stopping a gateway drains it: readiness fails at once, new calls are refused, and a transfer
already running finishes (within the drain) instead of being cancelled."""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
import time
import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest
from prometheus_client import REGISTRY

from services.allinone.settings import ServeSettings
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from services.gen.google.bytestream import bytestream_pb2_grpc as bs_grpc
from tests.support.servers import StackServer

CHUNK = 64 * 1024


def received() -> float:
    """Blob bytes the gateways of this process have taken in so far (their own counter)."""
    return sum(sample.value for metric in REGISTRY.collect() if metric.name == "bbapi_gateway_streamed_bytes"
               for sample in metric.samples if sample.name.endswith("_total") and sample.labels["direction"] == "in")


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    running = StackServer(ServeSettings(data_dir=tmp_path_factory.mktemp("bbapi"), host="127.0.0.1", grpc_port=0,
                                        http_port=0, admin_port=0, drain_seconds=60)).start()
    yield running
    if running.running is not None:
        running.stop()


def test_a_transfer_running_when_the_gateway_stops_finishes(server: StackServer) -> None:
    assert server.running is not None and server.running.gateway.admin is not None
    admin = f"http://127.0.0.1:{server.running.gateway.admin.port}"
    key = [("x-buildbuddy-api-key", server.admin_key)]
    data = bytes(range(256)) * (4 * CHUNK // 256)
    digest = hashlib.sha256(data).hexdigest()
    resource = f"uploads/{uuid.uuid4()}/blobs/{digest}/{len(data)}"
    chunks: queue.Queue[bs_pb2.WriteRequest | None] = queue.Queue()

    def requests() -> Iterator[bs_pb2.WriteRequest]:
        while (item := chunks.get()) is not None:
            yield item

    with grpc.insecure_channel(server.grpc_target) as channel:
        before = received()
        write = bs_grpc.ByteStreamStub(channel).Write.future(requests(), metadata=key, timeout=60)
        chunks.put(bs_pb2.WriteRequest(resource_name=resource, write_offset=0, data=data[:CHUNK]))
        while received() < before + CHUNK:  # the upload is under way on the server
            assert not write.done(), write.exception()
            time.sleep(0.01)

        stopping = asyncio.run_coroutine_threadsafe(server.running.stop(), server.loop.loop)
        while httpx.get(f"{admin}/readyz").status_code != 503:  # draining is visible at once
            assert not stopping.done()
        assert httpx.get(f"{admin}/readyz").json()["checks"]["accepting"] is False

        with grpc.insecure_channel(server.grpc_target) as fresh, pytest.raises(grpc.RpcError) as refused:
            re_grpc.CapabilitiesStub(fresh).GetCapabilities(re_pb2.GetCapabilitiesRequest(), metadata=key, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        for offset in range(CHUNK, len(data), CHUNK):  # the running upload carries on
            chunks.put(bs_pb2.WriteRequest(write_offset=offset, data=data[offset:offset + CHUNK],
                                           finish_write=offset + CHUNK >= len(data)))
        chunks.put(None)
        assert write.result().committed_size == len(data)
    stopping.result(timeout=60)
    server.running = None
    server.loop.close()


def test_stop_waits_no_longer_than_the_drain(tmp_path_factory: pytest.TempPathFactory) -> None:
    quick = StackServer(ServeSettings(data_dir=tmp_path_factory.mktemp("bbapi"), host="127.0.0.1", grpc_port=0,
                                      http_port=0, drain_seconds=0.2)).start()
    key = [("x-buildbuddy-api-key", quick.admin_key)]
    stuck: queue.Queue[bs_pb2.WriteRequest | None] = queue.Queue()
    with grpc.insecure_channel(quick.grpc_target) as channel:
        write = bs_grpc.ByteStreamStub(channel).Write.future(iter(stuck.get, None), metadata=key, timeout=60)
        digest = hashlib.sha256(b"x" * 10).hexdigest()
        stuck.put(bs_pb2.WriteRequest(resource_name=f"uploads/{uuid.uuid4()}/blobs/{digest}/10", data=b"x"))
        done = threading.Event()

        def stop() -> None:
            quick.stop()
            done.set()

        threading.Thread(target=stop, daemon=True).start()
        assert done.wait(30), "stop did not return after the drain"  # never finished: cancelled after 0.2 s
        with pytest.raises(grpc.RpcError):
            write.result(timeout=10)
        stuck.put(None)
