"""`bbapi serve` and `bbapi cluster` run one blob-store stack, so they answer alike."""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import httpx
import pytest

from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from tests.cluster.processes import ClusterProcess
from tests.support.clients import CacheClient, digest
from tests.support.servers import ServeProcess


@pytest.fixture(scope="module", params=["serve", "cluster"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp(request.param)
    process = ServeProcess(root) if request.param == "serve" else \
        ClusterProcess(root, ["--gateways", "1", "--cas-shards", "2", "--replication", "1"])
    process.start()
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def client(running: ServeProcess) -> Iterator[CacheClient]:
    assert running.admin_key is not None
    c = CacheClient(running.grpc_target, running.admin_key)
    yield c
    c.close()


def test_get_tree_with_a_missing_subtree_returns_the_present_part(client: CacheClient) -> None:
    a1 = re_pb2.Directory(files=[re_pb2.FileNode(name="f", digest=digest(b"file in a1"))])
    a = re_pb2.Directory(directories=[re_pb2.DirectoryNode(name="a1", digest=digest(a1.SerializeToString()))])
    b = re_pb2.Directory(files=[re_pb2.FileNode(name="g", digest=digest(b"file in b"))])  # never uploaded
    root = re_pb2.Directory(directories=[re_pb2.DirectoryNode(name="a", digest=digest(a.SerializeToString())),
                                         re_pb2.DirectoryNode(name="b", digest=digest(b.SerializeToString()))])
    for directory in (a1, a, root):
        client.upload(directory.SerializeToString())
    responses = list(client.cas.GetTree(re_pb2.GetTreeRequest(root_digest=digest(root.SerializeToString())),
                                        metadata=client.metadata))
    assert [d for r in responses for d in r.directories] == [root, a, a1]


def _ac_misses(running: ServeProcess) -> float:
    text = httpx.get(f"http://127.0.0.1:{running.http_port}/metrics").text
    match = re.search(r'^bbapi_gateway_cache_requests_total\{cache="ac",result="miss"\} (\S+)$', text, re.M)
    return float(match[1]) if match else 0.0


def test_an_action_cache_miss_is_not_found_and_counted_as_a_miss(running: ServeProcess,
                                                                 client: CacheClient) -> None:
    before = _ac_misses(running)
    for n in range(3):
        with pytest.raises(grpc.RpcError) as raised:
            client.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=digest(b"never run %d" % n)),
                                      metadata=client.metadata)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert _ac_misses(running) == before + 3
