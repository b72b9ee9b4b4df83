"""ByteStream throughput of bbapi next to a bare grpcio server moving the same bytes from memory.

    python bench/bytestream.py [--size-mib 64] [--runs 5]

Starts `bbapi serve` (all-in-one, one process), `bbapi cluster` with one gateway and one CAS
shard (the same code, the internal hop between two processes) and a bare grpc.aio ByteStream
server, then times Read (whole blob) and Write (Bazel's 16 KiB messages) from this process and
prints the medians and the ratios. Each bbapi write uploads a fresh blob, so every run is
verified, fsynced and stored for real.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from services.gen.google.bytestream import bytestream_pb2_grpc as bs_grpc
from tests.cluster.processes import ClusterProcess
from tests.support.clients import CacheClient
from tests.support.servers import ServeProcess

CHUNK_READ = 256 * 1024 - 1024
CHUNK_WRITE = 16 * 1024
OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


async def bare_server(size: int) -> None:
    """The reference: grpcio's asyncio server, serving a blob from memory and discarding uploads."""
    blob = os.urandom(size)

    class Bare(bs_grpc.ByteStreamServicer):
        async def Read(self, request: bs_pb2.ReadRequest, context: object) -> AsyncIterator[bs_pb2.ReadResponse]:
            view = memoryview(blob)
            for start in range(0, len(blob), CHUNK_READ):
                yield bs_pb2.ReadResponse(data=bytes(view[start:start + CHUNK_READ]))

        async def Write(self, requests: AsyncIterator[bs_pb2.WriteRequest], context: object) -> bs_pb2.WriteResponse:
            received = 0
            async for request in requests:
                received += len(request.data)
            return bs_pb2.WriteResponse(committed_size=received)

    server = grpc.aio.server(options=OPTIONS)
    bs_grpc.add_ByteStreamServicer_to_server(Bare(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


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
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    if args.bare_server:
        asyncio.run(bare_server(size))
        return

    blobs = [os.urandom(size) for _ in range(args.runs)]
    bare = subprocess.Popen([sys.executable, __file__, "--bare-server", "--size-mib", str(args.size_mib)],
                            stdout=subprocess.PIPE, text=True)
    assert bare.stdout is not None
    bare_port = int(bare.stdout.readline())
    with tempfile.TemporaryDirectory() as tmp:
        serve = ServeProcess(Path(tmp) / "serve", extra=["--log-level", "warning"]).start()
        cluster = ClusterProcess(Path(tmp) / "cluster", extra=["--gateways", "1", "--cas-shards", "1",
                                                               "--replication", "1", "--log-level", "warning"]).start()
        targets: list[Target] = []
        try:
            # the blob a bbapi Read fetches is the one its first Write stored
            name = f"blobs/{hashlib.sha256(blobs[0]).hexdigest()}/{len(blobs[0])}"
            targets = [Target("bare grpcio", f"127.0.0.1:{bare_port}", None, "blob"),
                       Target("bbapi serve", serve.grpc_target, serve.admin_key, name),
                       Target("bbapi cluster", cluster.grpc_target, cluster.admin_key, name)]
            for blob in blobs:  # round-robin, so drift on a busy machine hits every target alike
                for target in targets:
                    target.run(blob)
        finally:
            for target in targets:
                target.client.close()
            serve.stop()
            cluster.stop()
            bare.terminate()

    bare_target, *ours = targets
    print(f"\nByteStream, {args.size_mib} MiB blob, median of {args.runs} interleaved runs "
          "(MB/s, client in this process)\n")
    print(f"{'':<8}{bare_target.name:>14}" + "".join(f"{t.name:>15}{'ratio':>8}" for t in ours) + f"{'goal':>8}")
    for label, goal in (("reads", 0.8), ("writes", 0.7)):
        base = statistics.median(getattr(bare_target, label))
        row = f"{label[:-1].title():<8}{base:>14.0f}"
        for target in ours:
            speed = statistics.median(getattr(target, label))
            row += f"{speed:>15.0f}{speed / base:>8.2f}"
        print(f"{row}{goal:>8.1f}")


if __name__ == "__main__":
    main()
