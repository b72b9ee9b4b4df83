"""The public API under load: GetTarget page latency vs invocation size, GetFile next to nginx.

    python bench/api.py [--small 100] [--large 50000] [--file-mib 64] [--runs 7]

Starts `bbapi serve`, ingests a small and a large synthetic invocation through the real BES port
(bench/ingest.py's generator), then times GetTarget pages over HTTP (first page and a page deep
in the list) on both. Then serves the same 64 MiB file from bbapi's GetFile and from nginx
(Debian's package, sendfile on) and downloads both with curl. Prints medians in a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import synthetic_build
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


def median_ms(call: httpx.Client, url: str, body: dict[str, object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = call.post(url, json=body)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(times)


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
        return (median_ms(client, url, selector, runs),
                median_ms(client, url, {**selector, "page_token": token}, runs))


def curl_mb_per_s(args: list[str], runs: int) -> float:
    speeds = []
    for _ in range(runs):
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{http_code}", *args],
                             capture_output=True, text=True, check=True).stdout.split()
        assert out[1] == "200", out
        speeds.append(float(out[0]) / 1e6)
    return statistics.median(speeds)


def nginx_mb_per_s(data: bytes, runs: int, root: Path) -> float:
    (root / "www").mkdir(parents=True)
    for directory in (root.parent, root, root / "www"):
        directory.chmod(0o755)  # nginx workers run as an unprivileged user
    (root / "www" / "blob").write_bytes(data)
    port = 18000 + uuid.uuid4().int % 2000
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
    nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(root / "nginx.conf"),
                              "-p", str(root)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                httpx.head(f"http://127.0.0.1:{port}/blob")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        return curl_mb_per_s([f"http://127.0.0.1:{port}/blob"], runs)
    finally:
        nginx.terminate()
        nginx.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=50_000)
    parser.add_argument("--file-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    data = bytes(range(256)) * (args.file_mib * 4096)
    with tempfile.TemporaryDirectory() as tmp:
        serve = ServeProcess(Path(tmp) / "serve", extra=["--log-level", "warning"]).start()
        assert serve.admin_key is not None
        try:
            latency = {}
            for size in (args.small, args.large):
                invocation_id = str(uuid.uuid4())
                Publisher(serve.grpc_target, serve.admin_key).publish(
                    invocation_id, synthetic_build(invocation_id, size, log_bytes=0))
                latency[size] = target_latency(serve, serve.admin_key, invocation_id, args.runs)
            CacheClient(serve.grpc_target, serve.admin_key).upload(data)
            d = digest(data)
            body = json.dumps({"uri": f"bytestream://host/blobs/{d.hash}/{d.size_bytes}"})
            ours = curl_mb_per_s(["-d", body, "-H", f"x-buildbuddy-api-key: {serve.admin_key}",
                                  "-H", "Content-Type: application/json",
                                  f"http://127.0.0.1:{serve.http_port}/api/v1/GetFile"], args.runs)
        finally:
            serve.stop()
        theirs = nginx_mb_per_s(data, args.runs, Path(tmp) / "nginx")

    print(f"\nGetTarget over HTTP, median of {args.runs} (ms)\n")
    print(f"{'targets':>10}{'first page':>12}{'deep page':>12}")
    for size, (first, deep) in latency.items():
        print(f"{size:>10}{first:>12.1f}{deep:>12.1f}")
    ratio = max(latency[args.large]) / max(min(latency[args.small]), 1e-9)
    print(f"\nlarge / small (slowest large page / fastest small page): {ratio:.2f}x   (goal <= 2x)")
    print(f"\nGetFile over HTTP, {args.file_mib} MiB, curl, median of {args.runs} (MB/s)\n")
    print(f"{'nginx (sendfile)':>18}{'bbapi serve':>14}{'ratio':>8}{'goal':>8}")
    print(f"{theirs:>18.0f}{ours:>14.0f}{ours / theirs:>8.2f}{0.5:>8.1f}")


if __name__ == "__main__":
    main()
