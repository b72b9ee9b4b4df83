"""Every read counts alike in /metrics: bytes streamed out and cache hits and misses, whether the
blob leaves by ByteStream, GetFile (HTTP or gRPC) or a download link."""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import quote

import grpc
import httpx
import zstandard

from services.gen.api.v1 import file_pb2
from services.gen.api.v1 import service_pb2_grpc as api_grpc
from tests.api.test_http_api import uri
from tests.support.clients import CacheClient, digest
from tests.support.metrics import sample
from tests.support.servers import StackServer

KEY = "x-buildbuddy-api-key"


def figures(server: StackServer) -> dict[str, float]:
    text = httpx.get(f"{server.http_url}/metrics").text
    return {
        "hit": sample(text, "bbapi_gateway_cache_requests_total", cache="cas", result="hit", tenant="default"),
        "miss": sample(text, "bbapi_gateway_cache_requests_total", cache="cas", result="miss", tenant="default"),
        "out": sample(text, "bbapi_gateway_streamed_bytes_total", direction="out", compression="identity",
                      tenant="default"),
        "out_zstd": sample(text, "bbapi_gateway_streamed_bytes_total", direction="out", compression="zstd",
                           tenant="default"),
    }


def delta(server: StackServer, action: Callable[[], object]) -> dict[str, float]:
    before = figures(server)
    action()
    after = figures(server)
    return {name: after[name] - before[name] for name in before if after[name] != before[name]}


def test_every_read_path_counts_bytes_hits_and_misses(server: StackServer, client: CacheClient) -> None:
    data = os.urandom(700_000)
    client.upload(data, instance="ci/linux")
    headers = {KEY: server.admin_key}
    download = f"{server.http_url}/file/download?bytestream_url={quote(uri(data), safe='')}"
    absent = f"{server.http_url}/file/download?bytestream_url={quote(uri(b'never stored'), safe='')}"

    def grpc_get_file() -> bytes:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = api_grpc.ApiServiceStub(channel)
            request = file_pb2.GetFileRequest(uri=uri(data))
            return b"".join(r.data for r in stub.GetFile(request, metadata=[(KEY, server.admin_key)]))

    bytestream = delta(server, lambda: client.download(digest(data), instance="ci/linux"))
    assert bytestream == {"hit": 1, "out": len(data)}  # the reference every other path must match
    assert delta(server, lambda: server.api("GetFile", {"uri": uri(data)})) == bytestream
    assert delta(server, grpc_get_file) == bytestream
    assert delta(server, lambda: httpx.get(download, headers=headers)) == bytestream
    assert delta(server, lambda: httpx.get(download, headers={**headers, "range": "bytes=1000-"})) == {
        "hit": 1, "out": len(data) - 1000}
    assert delta(server, lambda: server.api("GetFileRange", {"uri": uri(data), "start": 10, "end": 20})) == {
        "hit": 1, "out": 10}

    zstd = httpx.post(f"{server.http_url}/api/v1/GetFile", json={"uri": uri(data, compressed=True)}, headers=headers)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zstd.content) == data
    assert figures(server)["out_zstd"] >= len(zstd.content)
    assert delta(server, lambda: server.api("GetFile", {"uri": uri(data, compressed=True)})) == {
        "hit": 1, "out_zstd": len(zstd.content)}

    assert delta(server, lambda: httpx.get(absent, headers=headers)) == {"miss": 1}
    assert delta(server, lambda: server.api("GetFile", {"uri": uri(b"never stored")})) == {"miss": 1}
