"""The public API under load: GetTarget page latency vs invocation size, GetFile next to nginx.

    python bench/api.py [--small 100] [--large 50000] [--file-mib 64] [--runs 7]

Starts `bbapi serve`, ingests a small and a large synthetic invocation through the real BES port
(bench/ingest.py's generator), then times GetTarget pages over HTTP (first page and a page deep
in the list) on both. Then serves the same 64 MiB file from GetFile of `bbapi serve` (one
process), of `bbapi cluster` (gateway and CAS shard as separate processes) and from nginx
(Debian's package, sendfile on), and by link from `bbapi serve` (`GET /file/download`),
downloading from each in turn with curl. Prints medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import synthetic_build
from bench.peers import start_cluster, start_serve
from tests.support.bes import Publisher
from tests.support.clients import CacheClient, digest
from tests.support.servers import ServeProcess

NGINX_CONF = """worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    server {{ listen 127.0.0.1:{port}; root {root}/www; }}
}}
"""


def curl(args: list[str], metric: str) -> float:
    """One curl -w metric. curl, not a Python client: httpx sends headers and body in two writes,
    and Nagle against the server's delayed ACK adds ~40 ms to every request."""
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", f"%{{{metric}}} %{{http_code}}", *args],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "200", out
    return float(out[0])


def api_call(server: ServeProcess, key: str, method: str, body: dict[str, object]) -> list[str]:
    return ["-d", json.dumps(body), "-H", f"x-buildbuddy-api-key: {key}", "-H", "Content-Type: application/json",
            f"http://127.0.0.1:{server.http_port}/api/v1/{method}"]


def target_latency(serve: ServeProcess, key: str, invocation_id: str, runs: int) -> tuple[float, float]:
    """(first page, a deep page) median milliseconds for GetTarget."""
    url = f"http://127.0.0.1:{serve.http_port}/api/v1/GetTarget"
    with httpx.Client(headers={"x-buildbuddy-api-key": key}, timeout=60) as client:
        selector = {"selector": {"invocation_id": invocation_id}}
        token, pages = "", 0
        while pages < 40:  # walk into the middle of a large list (or to the end of a small one)
            page = client.post(url, json={**selector, "page_token": token}).json()
            if not page.get("nextPageToken"):
                break
            token, pages = page["nextPageToken"], pages + 1
    first: dict[str, object] = {**selector}
    deep: dict[str, object] = {**selector, "page_token": token}
    first_ms, deep_ms = (statistics.median(curl(api_call(serve, key, "GetTarget", body), "time_total") * 1000
                                           for _ in range(runs)) for body in (first, deep))
    return first_ms, deep_ms


@contextlib.contextmanager
def nginx(data: bytes, root: Path) -> Iterator[list[str]]:
    """nginx serving `data` from disk; yields the curl arguments that download it."""
    (root / "www").mkdir(parents=True)
    for directory in (root.parent, root, root / "www"):
        directory.chmod(0o755)  # nginx workers run as an unprivileged user
    (root / "www" / "blob").write_bytes(data)
    port = 18000 + uuid.uuid4().int % 2000
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
    server = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(root / "nginx.conf"),
                               "-p", str(root)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                httpx.head(f"http://127.0.0.1:{port}/blob")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield [f"http://127.0.0.1:{port}/blob"]
    finally:
        server.terminate()
        server.wait()


def get_file(server: ServeProcess, data: bytes) -> list[str]:
    """Stores `data` through the server's cache; the curl arguments that GetFile it over HTTP."""
    assert server.admin_key is not None
    CacheClient(server.grpc_target, server.admin_key).upload(data)
    d = digest(data)
    return api_call(server, server.admin_key, "GetFile", {"uri": f"bytestream://host/blobs/{d.hash}/{d.size_bytes}"})


def download_link(server: ServeProcess, data: bytes) -> list[str]:
    """The curl arguments that download `data` (stored by get_file) by link: GET /file/download."""
    assert server.admin_key is not None
    d = digest(data)
    return ["-H", f"x-buildbuddy-api-key: {server.admin_key}",
            f"http://127.0.0.1:{server.http_port}/file/download?bytestream_url=bytestream://host/blobs/"
            f"{d.hash}/{d.size_bytes}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=50_000)
    parser.add_argument("--file-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    data = bytes(range(256)) * (args.file_mib * 4096)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        serve = start_serve(Path(tmp) / "serve")
        stack.callback(serve.stop)
        assert serve.admin_key is not None
        invocations = {}
        for size in (args.small, args.large):
            invocations[size] = str(uuid.uuid4())
            Publisher(serve.grpc_target, serve.admin_key).publish(
                invocations[size], synthetic_build(invocations[size], size, log_bytes=0))
        # Both measured on the same database, after all ingestion, so neither pays for the other's writes.
        latency = {size: target_latency(serve, serve.admin_key, invocation_id, args.runs)
                   for size, invocation_id in invocations.items()}

        cluster = start_cluster(Path(tmp) / "cluster")
        stack.callback(cluster.stop)
        downloads = {"nginx (sendfile)": stack.enter_context(nginx(data, Path(tmp) / "nginx")),
                     "bbapi serve": get_file(serve, data), "bbapi cluster": get_file(cluster, data),
                     "serve by link": download_link(serve, data)}
        speeds: dict[str, list[float]] = {name: [] for name in downloads}
        for _ in range(args.runs):  # round-robin, so drift on a busy machine hits every server alike
            for name, curl_args in downloads.items():
                speeds[name].append(curl(curl_args, "speed_download") / 1e6)

    print(f"\nGetTarget over HTTP, median of {args.runs} (ms)\n")
    print(f"{'targets':>10}{'first page':>12}{'deep page':>12}")
    for size, (first, deep) in latency.items():
        print(f"{size:>10}{first:>12.1f}{deep:>12.1f}")
    ratio = max(latency[args.large]) / max(min(latency[args.small]), 1e-9)
    print(f"\nlarge / small (slowest large page / fastest small page): {ratio:.2f}x   (goal <= 2x)")
    print(f"\nGetFile over HTTP, {args.file_mib} MiB, curl, median of {args.runs} interleaved runs (MB/s)\n")
    base, *ours = (statistics.median(values) for values in speeds.values())
    names = list(speeds)
    print(f"{names[0]:>18}" + "".join(f"{name:>15}{'ratio':>8}" for name in names[1:]) + f"{'goal':>8}")
    print(f"{base:>18.0f}" + "".join(f"{speed:>15.0f}{speed / base:>8.2f}" for speed in ours) + f"{0.5:>8.1f}")


if __name__ == "__main__":
    main()
