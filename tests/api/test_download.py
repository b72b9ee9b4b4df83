"""`GET /file/download`: files by plain link, fetched and resumed with the real curl and wget."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import grpc
import httpx
import pytest
import zstandard

from services.common.auth import Capability
from tests.api.test_http_api import uri
from tests.support.clients import CacheClient, digest
from tests.support.servers import StackServer

KEY = "x-buildbuddy-api-key"


def link(server: StackServer, data: bytes, filename: str | None = None, compressed: bool = False,
         ac: bool = False) -> str:
    query = f"bytestream_url={quote(uri(data, compressed=compressed, ac=ac), safe='')}"
    if filename is not None:
        query += f"&filename={quote(filename, safe='')}"
    return f"{server.http_url}/file/download?{query}"


def curl(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "--silent", "--show-error", *args], cwd=cwd, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def stored(client: CacheClient) -> bytes:
    data = os.urandom(3 * 1024 * 1024 + 123)  # files past the packed store's size: read from a file
    client.upload(data, instance="ci/linux")
    return data


def test_curl_keeps_the_name_and_the_bytes(server: StackServer, stored: bytes, tmp_path: Path) -> None:
    run = curl("-O", "-J", "-H", f"{KEY}: {server.admin_key}", link(server, stored, "report v2.tar.gz"),
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "report v2.tar.gz").read_bytes() == stored
    unnamed = httpx.get(link(server, stored), headers={KEY: server.admin_key})
    assert unnamed.headers["content-disposition"] == f'attachment; filename="{digest(stored).hash}"'
    assert unnamed.headers["content-length"] == str(len(stored)) and unnamed.content == stored
    assert unnamed.headers["etag"] == f'"{digest(stored).hash}"'
    assert unnamed.headers["accept-ranges"] == "bytes"


def test_non_ascii_and_path_names(server: StackServer, client: CacheClient) -> None:
    data = b"small file"
    client.upload(data, instance="ci/linux")
    named = httpx.get(link(server, data, "../../etc/résumé \"final\".txt"), headers={KEY: server.admin_key})
    assert named.status_code == 200 and named.content == data
    assert named.headers["content-disposition"] == (
        "attachment; filename=\"resume _final_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.txt")


def test_curl_resumes_an_interrupted_download(server: StackServer, stored: bytes, tmp_path: Path) -> None:
    target = tmp_path / "artifact.bin"
    target.write_bytes(stored[:1_000_003])  # what an interrupted download left
    run = curl("-C", "-", "-o", str(target), "-H", f"{KEY}: {server.admin_key}", link(server, stored),
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert target.read_bytes() == stored
    again = curl("-C", "-", "-o", str(target), "-H", f"{KEY}: {server.admin_key}", link(server, stored),
                 cwd=tmp_path)  # already complete: 416 with the size, which curl reads as done
    assert again.returncode == 0, again.stderr
    assert target.read_bytes() == stored


def test_curl_range_then_resume(server: StackServer, client: CacheClient, tmp_path: Path) -> None:
    """A download cut short by curl itself (`--range` stands in for the broken connection)."""
    target = tmp_path / "cut.bin"
    data = os.urandom(600_000)
    client.upload(data, instance="ci/linux")
    first = curl("--range", "0-99999", "-o", str(target), "-H", f"{KEY}: {server.admin_key}", link(server, data),
                 cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert target.read_bytes() == data[:100_000]
    rest = curl("-C", "-", "-o", str(target), "-H", f"{KEY}: {server.admin_key}", link(server, data), cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert target.read_bytes() == data


@pytest.mark.skipif(shutil.which("wget") is None, reason="wget is not installed (apt-get install -y wget)")
def test_wget_continues_a_partial_file(server: StackServer, stored: bytes, tmp_path: Path) -> None:
    target = tmp_path / "artifact.bin"
    target.write_bytes(stored[:2_500_000])
    run = subprocess.run(["wget", "-q", "-c", "-O", str(target), "--header", f"{KEY}: {server.admin_key}",
                          link(server, stored)], capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert target.read_bytes() == stored


def test_ranges_and_validators(server: StackServer, stored: bytes) -> None:
    size = len(stored)
    etag = f'"{digest(stored).hash}"'

    def get(**headers: str) -> httpx.Response:
        return httpx.get(link(server, stored), headers={KEY: server.admin_key, **headers})

    middle = get(range="bytes=100-199")
    assert middle.status_code == 206 and middle.content == stored[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{size}" and middle.headers["content-length"] == "100"
    assert get(range="bytes=-10").content == stored[-10:]
    assert get(range=f"bytes={size - 5}-{size + 1000}").content == stored[-5:]  # clamped to the end
    beyond = get(range=f"bytes={size}-")
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    assert beyond.json()["code"] == grpc.StatusCode.OUT_OF_RANGE.value[0]
    several = get(range="bytes=0-1,5-6")  # not served as multipart: the whole file, as RFC 9110 allows
    assert several.status_code == 200 and several.content == stored
    assert get(range="bytes=0-9", **{"if-range": etag}).status_code == 206
    assert get(range="bytes=0-9", **{"if-range": '"stale"'}).status_code == 200
    not_modified = get(**{"if-none-match": f'"other", {etag}'})
    assert not_modified.status_code == 304 and not_modified.headers["etag"] == etag and not_modified.content == b""
    assert get(**{"if-none-match": '"other"'}).status_code == 200
    head = httpx.head(link(server, stored), headers={KEY: server.admin_key})
    assert head.status_code == 200 and head.headers["content-length"] == str(size) and head.content == b""


def test_zstd_and_action_result_links_are_sent_whole(server: StackServer, stored: bytes) -> None:
    zstd = httpx.get(link(server, stored, compressed=True), headers={KEY: server.admin_key, "range": "bytes=5-"})
    assert zstd.status_code == 200 and zstd.headers["accept-ranges"] == "none" and "etag" not in zstd.headers
    assert zstd.headers["content-type"] == "application/zstd"
    assert zstd.headers["content-disposition"] == f'attachment; filename="{digest(stored).hash}.zst"'
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zstd.content) == stored
    no_result = httpx.get(link(server, b"never run", ac=True), headers={KEY: server.admin_key})
    assert no_result.status_code == 404


def test_errors(server: StackServer, stored: bytes) -> None:
    assert httpx.get(link(server, stored)).status_code == 401
    assert httpx.get(link(server, stored), headers={KEY: "not-a-real-key-at-all-000000000"}).status_code == 401
    in_url = httpx.get(link(server, stored) + f"&api_key={server.admin_key}", headers={KEY: server.admin_key})
    assert in_url.status_code == 400 and KEY in in_url.json()["message"]
    for bad in ("", "https://x/blobs/abc/1", "bytestream://host/blobs/nothex/1"):
        answer = httpx.get(f"{server.http_url}/file/download", params={"bytestream_url": bad},
                           headers={KEY: server.admin_key})
        assert answer.status_code == 400 and answer.json()["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0], bad
    missing = httpx.get(link(server, b"never stored"), headers={KEY: server.admin_key, "range": "bytes=99999-"})
    assert missing.status_code == 404


def test_another_tenants_blob_reads_as_missing(server: StackServer, stored: bytes,
                                               make_key: Callable[[str, Capability], str]) -> None:
    stranger = {KEY: make_key("download-strangers", Capability.READ)}
    mine = httpx.get(link(server, stored), headers={KEY: server.admin_key, "range": "bytes=0-9"})
    assert mine.status_code == 206
    for headers in ({}, {"range": "bytes=0-9"}, {"range": f"bytes={len(stored)}-"},
                    {"if-none-match": mine.headers["etag"]}):
        theirs = httpx.get(link(server, stored), headers={**stranger, **headers})
        absent = httpx.get(link(server, b"never stored"), headers={**stranger, **headers})
        assert theirs.status_code == absent.status_code == 404, headers
        assert theirs.json()["code"] == absent.json()["code"]
    assert httpx.head(link(server, stored), headers=stranger).status_code == 404


def test_openapi_describes_the_route(server: StackServer) -> None:
    operation = httpx.get(f"{server.http_url}/openapi.json").json()["paths"]["/file/download"]["get"]
    assert [p["name"] for p in operation["parameters"]][:2] == ["bytestream_url", "filename"]
    assert {"200", "206", "304", "401", "404", "416"} <= set(operation["responses"])
