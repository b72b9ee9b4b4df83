"""Cache hits, misses and bytes are counted per tenant, with the label's values bounded."""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from services.common.tenant_labels import OTHER, TenantCounter, TenantLabels
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from tests.support.clients import CacheClient, digest
from tests.support.metrics import sample
from tests.support.servers import ServeProcess

TENANTS = ("team-a", "team-b", "team-c")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A real `bbapi serve` that labels at most two tenants by name."""
    serve = ServeProcess(tmp_path_factory.mktemp("bbapi"), extra=["--metrics-tenants", "2"]).start()
    yield serve
    serve.stop()


def traffic(client: CacheClient, uploads: int) -> None:
    """`uploads` blobs of 1000 bytes written, then found (hits), two absent ones asked for and
    one action-cache miss."""
    blobs = [os.urandom(1000) for _ in range(uploads)]
    for blob in blobs:
        client.upload(blob)
    assert len(client.missing(*blobs, os.urandom(8), os.urandom(8))) == 2 and client.missing(*blobs) == []
    with pytest.raises(grpc.RpcError) as raised:
        client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=digest(os.urandom(8))),
                                  metadata=client.metadata)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def figures(text: str, tenant: str) -> dict[str, float]:
    cache = "bbapi_gateway_cache_requests_total"
    return {"cas_hit": sample(text, cache, cache="cas", result="hit", tenant=tenant),
            "cas_miss": sample(text, cache, cache="cas", result="miss", tenant=tenant),
            "ac_miss": sample(text, cache, cache="ac", result="miss", tenant=tenant),
            "bytes_in": sample(text, "bbapi_gateway_streamed_bytes_total", direction="in", compression="identity",
                               tenant=tenant)}


def test_two_tenants_are_counted_apart_and_a_third_is_folded(running: ServeProcess) -> None:
    for n, tenant in enumerate(TENANTS, start=1):
        client = CacheClient(running.grpc_target, running.new_key(tenant))
        try:
            traffic(client, uploads=n)
        finally:
            client.close()
    text = httpx.get(f"http://127.0.0.1:{running.http_port}/metrics").text
    # each tenant's hits are its own uploads, found twice; the third tenant is over the cap of two
    assert figures(text, "team-a") == {"cas_hit": 2, "cas_miss": 2, "ac_miss": 1, "bytes_in": 1000}
    assert figures(text, "team-b") == {"cas_hit": 4, "cas_miss": 2, "ac_miss": 1, "bytes_in": 2000}
    assert figures(text, OTHER) == {"cas_hit": 6, "cas_miss": 2, "ac_miss": 1, "bytes_in": 3000}
    assert 'tenant="team-c"' not in text


def test_the_label_cap_keeps_names_already_given() -> None:
    registry = CollectorRegistry()
    counter = Counter("lookups", "test counter", ["result", "tenant"], registry=registry)
    labels = TenantLabels(limit=1)
    counts = TenantCounter(counter, labels)
    counts("a", "hit").inc()
    counts("b", "hit").inc(2)
    labels.limit = 0  # lowering the cap later does not rename a tenant already labelled
    counts("a", "hit").inc()
    counts("c", "miss").inc()
    assert registry.get_sample_value("lookups_total", {"result": "hit", "tenant": "a"}) == 2
    assert registry.get_sample_value("lookups_total", {"result": "hit", "tenant": OTHER}) == 2
    assert registry.get_sample_value("lookups_total", {"result": "miss", "tenant": OTHER}) == 1
    assert registry.get_sample_value("lookups_total", {"result": "hit", "tenant": "b"}) is None
