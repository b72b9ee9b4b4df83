"""ByteStream throughput of bbapi next to BuildGrid and a bare grpcio server moving the same bytes from memory.

    python bench/bytestream.py [--size-mib 64] [--runs 5]

Starts `bbapi serve` (all-in-one, one process), `bbapi cluster` with one gateway and one CAS
shard (the same code, the internal hop between two processes), BuildGrid (disk storage, see
bench/peers.py) and the bare grpc.aio server of bench/bare.py, then times Read (whole blob) and
Write (Bazel's 16 KiB messages) from this process and prints the medians and the ratios to the
bare server. Each write to a cache uploads a fresh blob, so every run is verified, fsynced and
stored for real.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bare
from bench.peers import buildgrid, start_cluster, start_serve
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from tests.support.clients import CacheClient

CHUNK_WRITE = 16 * 1024


@dataclass
class Target:
    """One server under test, with its client and the timings collected so far."""

    name: str
    address: str
    key: str | None
    read_name: str
    reads: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = CacheClient(self.address, self.key)  # no message size limit on what it receives

    def run(self, blob: bytes) -> None:
        digest = hashlib.sha256(blob).hexdigest()
        resource = f"uploads/{uuid.uuid4()}/blobs/{digest}/{len(blob)}"
        requests = self.client.write_requests(blob, resource, chunk=CHUNK_WRITE)
        start = time.perf_counter()
        response = self.client.bytestream.Write(requests, metadata=self.client.metadata)
        self.writes.append(len(blob) / (time.perf_counter() - start) / 1e6)
        assert response.committed_size == len(blob), response
        start = time.perf_counter()
        received = sum(len(r.data) for r in self.client.bytestream.Read(
            bs_pb2.ReadRequest(resource_name=self.read_name), metadata=self.client.metadata))
        self.reads.append(received / (time.perf_counter() - start) / 1e6)
        assert received == len(blob)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024

    blobs = [os.urandom(size) for _ in range(args.runs)]
    targets: list[Target] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        proc, bare_address = bare.start(args.size_mib)
        stack.callback(proc.wait)
        stack.callback(proc.terminate)
        serve = start_serve(Path(tmp) / "serve")
        stack.callback(serve.stop)
        cluster = start_cluster(Path(tmp) / "cluster")
        stack.callback(cluster.stop)
        # the blob a cache's Read fetches is the one its first Write stored
        name = f"blobs/{hashlib.sha256(blobs[0]).hexdigest()}/{len(blobs[0])}"
        targets = [Target("bare grpcio", bare_address, None, "blob"),
                   Target("BuildGrid", stack.enter_context(buildgrid(Path(tmp) / "buildgrid")), None, name),
                   Target("bbapi serve", serve.grpc_target, serve.admin_key, name),
                   Target("bbapi cluster", cluster.grpc_target, cluster.admin_key, name)]
        for target in targets:
            stack.callback(target.client.close)
        for blob in blobs:  # round-robin, so drift on a busy machine hits every target alike
            for target in targets:
                target.run(blob)

    bare_target, *others = targets
    print(f"\nByteStream, {args.size_mib} MiB blob, median of {args.runs} interleaved runs "
          "(MB/s, client in this process; ratio to the bare server)\n")
    print(f"{'':<8}{bare_target.name:>14}" + "".join(f"{t.name:>15}{'ratio':>8}" for t in others)
          + "  goal")
    for label, goal in (("reads", "serve >= 0.9x, cluster >= 0.7x"), ("writes", "serve >= 0.8x")):
        base = statistics.median(getattr(bare_target, label))
        row = f"{label[:-1].title():<8}{base:>14.0f}"
        for target in others:
            speed = statistics.median(getattr(target, label))
            row += f"{speed:>15.0f}{speed / base:>8.2f}"
        print(f"{row}  {goal}")


if __name__ == "__main__":
    main()
