"""The small-blob path of the cache next to a bare grpc.aio server and BuildGrid; GetFile next to nginx.

    python bench/cas.py [--digests 10000] [--batch 1000] [--blob-kib 1] [--file-mib 64] [--runs 5]

Starts the bare server of bench/bare.py (CAS in a dict), BuildGrid (disk storage, see
bench/peers.py), `bbapi serve` and `bbapi cluster` (one gateway, one shard), stores DIGESTS/2
blobs in each, then per run and server, from one client in this process: FindMissingBlobs of
DIGESTS digests (half stored, half not), BatchUpdateBlobs of BATCH new blobs of BLOB_KIB each
and BatchReadBlobs of those. Every answer is checked. "bbapi serve, tagged" is the same serve process
called with Bazel's RequestMetadata on every call, so its calls are counted per invocation (cache
statistics): the two columns side by side show what that attribution costs. GetFile of a 64 MiB file over HTTP is
downloaded with curl from bbapi and from nginx (bench/api.py). Servers take turns every run,
the order rotating; the table gives medians, the ratios to the bare server (time) or to nginx
(speed) and to BuildGrid, and the goals of issue 11.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bare
from bench.api import curl, get_file, nginx
from bench.peers import buildgrid, start_cluster, start_serve
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from tests.support.clients import CacheClient, digest
from tests.support.servers import ServeProcess

TAGGED = "bbapi serve, tagged"  # the same server, every call carrying Bazel's RequestMetadata (cache statistics)
NAMES = ("bare grpc.aio", "BuildGrid 0.4.4", "nginx", "bbapi serve", TAGGED, "bbapi cluster")
# (operation, unit, goal): times are ratios to the bare server, GetFile's speed a ratio to nginx
OPERATIONS = (("FindMissingBlobs", "ms", "<= 2x bare"), ("BatchUpdateBlobs", "ms", "<= 3x bare, <= 0.5x BuildGrid"),
              ("BatchReadBlobs", "ms", "<= 3x bare, <= 0.5x BuildGrid"), ("GetFile over HTTP", "MB/s", ">= 0.5x nginx"))


def blobs(count: int, size: int) -> list[bytes]:
    return [os.urandom(size) for _ in range(count)]


@dataclass
class Cache:
    """One gRPC cache under test: its client and the FindMissingBlobs request it answers (`absent` missing)."""

    client: CacheClient
    find: re_pb2.FindMissingBlobsRequest
    absent: int

    @classmethod
    def create(cls, address: str, key: str | None, stored: list[bytes], absent: list[bytes],
               invocation_id: str | None = None) -> Cache:
        client = CacheClient(address, key, invocation_id)
        for start in range(0, len(stored), 1000):
            update(client, stored[start:start + 1000])
        return cls(client, re_pb2.FindMissingBlobsRequest(blob_digests=[digest(b) for b in stored + absent]),
                   len(absent))

    def round(self, batch: list[bytes]) -> dict[str, float]:
        """Seconds of one FindMissingBlobs, BatchUpdateBlobs (of `batch`, new) and BatchReadBlobs (of `batch`)."""
        start = time.perf_counter()
        missing = self.client.cas.FindMissingBlobs(self.find, metadata=self.client.metadata).missing_blob_digests
        found = time.perf_counter()
        assert len(missing) == self.absent, f"{len(missing)} missing, {self.absent} expected"
        updated = update(self.client, batch)
        read = re_pb2.BatchReadBlobsRequest(digests=[digest(b) for b in batch])
        start_read = time.perf_counter()
        responses = self.client.cas.BatchReadBlobs(read, metadata=self.client.metadata).responses
        done = time.perf_counter()
        assert [r.data for r in responses] == batch and not any(r.status.code for r in responses)
        return {"FindMissingBlobs": found - start, "BatchUpdateBlobs": updated, "BatchReadBlobs": done - start_read}


def update(client: CacheClient, batch: list[bytes]) -> float:
    """Seconds BatchUpdateBlobs of `batch` took (every blob checked stored)."""
    request = re_pb2.BatchUpdateBlobsRequest(requests=[
        re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b), data=b) for b in batch])
    start = time.perf_counter()
    responses = client.cas.BatchUpdateBlobs(request, metadata=client.metadata).responses
    elapsed = time.perf_counter() - start
    assert len(responses) == len(batch) and not any(r.status.code for r in responses), responses[:3]
    return elapsed


def cell(name: str, operation: str, unit: str, results: dict[str, dict[str, list[float]]]) -> str:
    """The median, and for bbapi the ratios the goals are stated in."""
    values = results[name].get(operation)
    if not values:
        return "-"
    value = statistics.median(values) * (1000 if unit == "ms" else 1)
    text = f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    if not name.startswith("bbapi"):
        return text
    references = ("nginx",) if unit == "MB/s" else ("bare grpc.aio", "BuildGrid 0.4.4")
    ratios = [f"{statistics.median(values) / statistics.median(results[ref][operation]):.2f}x {ref.split()[0]}"
              for ref in references if results[ref].get(operation)]
    return f"{text} ({', '.join(ratios)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--blob-kib", type=int, default=1)
    parser.add_argument("--file-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    stored, absent = blobs(args.digests // 2, 1024), blobs(args.digests - args.digests // 2, 1024)
    batches = {name: [blobs(args.batch, args.blob_kib * 1024) for _ in range(args.runs)] for name in NAMES}
    data = os.urandom(args.file_mib * 1024 * 1024)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bbapi-bench-cas-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        proc, bare_address = bare.start()
        stack.callback(proc.wait)
        stack.callback(proc.terminate)
        servers: dict[str, ServeProcess] = {"bbapi serve": start_serve(root / "serve"),
                                            "bbapi cluster": start_cluster(root / "cluster")}
        for server in servers.values():
            stack.callback(server.stop)
        addresses = {"bare grpc.aio": (bare_address, None),
                     "BuildGrid 0.4.4": (stack.enter_context(buildgrid(root / "buildgrid")), None),
                     **{name: (server.grpc_target, server.admin_key) for name, server in servers.items()}}
        caches = {name: Cache.create(address, key, stored, absent) for name, (address, key) in addresses.items()}
        caches[TAGGED] = Cache.create(*addresses["bbapi serve"], stored, absent, invocation_id=str(uuid.uuid4()))
        for cache in caches.values():
            stack.callback(cache.client.close)
        downloads = {"nginx": stack.enter_context(nginx(data, root / "nginx")),
                     **{name: get_file(server, data) for name, server in servers.items()}}

        results: dict[str, dict[str, list[float]]] = {name: {} for name in NAMES}
        for run in range(args.runs):  # servers take turns, starting one further each run
            order = NAMES[run % len(NAMES):] + NAMES[:run % len(NAMES)]
            for name in order:
                measured = caches[name].round(batches[name][run]) if name in caches else {}
                if name in downloads:
                    measured["GetFile over HTTP"] = curl(downloads[name], "speed_download") / 1e6
                for operation, value in measured.items():
                    results[name].setdefault(operation, []).append(value)

    print(f"\n{args.digests:,} digests; batches of {args.batch:,} x {args.blob_kib} KiB; GetFile {args.file_mib} MiB; "
          f"median of {args.runs} interleaved runs, one client; load average {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores\n")
    print("| | " + " | ".join(NAMES) + " | goal (bbapi) |")
    print("|" + " --- |" * (len(NAMES) + 2))
    for operation, unit, goal in OPERATIONS:
        print(f"| {operation} | " + " | ".join(cell(name, operation, unit, results) for name in NAMES) + f" | {goal} |")


if __name__ == "__main__":
    main()
