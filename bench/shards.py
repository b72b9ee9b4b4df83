"""What sharding costs and buys: FindMissingBlobs on 1 vs 3 shards, blob spread, 1 vs 2 gateways.

    python bench/shards.py [--digests 10000] [--runs 20] [--blob-mib 32] [--clients 4] [--seconds 8]

Starts real `bbapi cluster` processes (R=2) one after another and drives them from this
process (FindMissingBlobs) and from client processes (ByteStream reads of large blobs, raw
bytes so the clients stay cheap), then prints one table. Every number is measured on this
machine with everything - clients, gateways, shards - sharing its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.cluster import control
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from tests.cluster.processes import ClusterProcess
from tests.support.clients import CacheClient, digest

OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
           ("grpc.use_local_subchannel_pool", 1)]  # one connection per channel, so the kernel spreads them
READ_METHOD = "/google.bytestream.ByteStream/Read"


@dataclass
class Result:
    find_present: float = 0.0  # median seconds
    find_absent: float = 0.0
    spread: dict[str, float] | None = None
    read_mbps: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)  # CPU used during the reads, by process kind


def start(root: Path, name: str, shards: int, gateways: int) -> ClusterProcess:
    return ClusterProcess(root / name, ["--cas-shards", str(shards), "--gateways", str(gateways),
                                        "--replication", "2", "--log-level", "warning"]).start()


def upload_small(cluster: ClusterProcess, blobs: list[bytes]) -> None:
    client = CacheClient(cluster.grpc_target, cluster.admin_key)
    for start_at in range(0, len(blobs), 1000):
        batch = blobs[start_at:start_at + 1000]
        request = re_pb2.BatchUpdateBlobsRequest(requests=[
            re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b), data=b) for b in batch])
        response = client.cas.BatchUpdateBlobs(request, metadata=client.metadata)
        assert all(r.status.code == 0 for r in response.responses)
    client.close()


def time_find_missing(cluster: ClusterProcess, digests: list[re_pb2.Digest], runs: int, expect: int) -> float:
    channel = grpc.insecure_channel(cluster.grpc_target, options=OPTIONS)
    stub = re_grpc.ContentAddressableStorageStub(channel)
    metadata = [("x-buildbuddy-api-key", cluster.admin_key or "")]
    request = re_pb2.FindMissingBlobsRequest(blob_digests=digests)
    timings = []
    for run in range(runs + 2):
        began = time.perf_counter()
        response = stub.FindMissingBlobs(request, metadata=metadata)
        if run >= 2:  # two warm-up calls
            timings.append(time.perf_counter() - began)
        assert len(response.missing_blob_digests) == expect
    channel.close()
    return statistics.median(timings)


def spread(cluster: ClusterProcess) -> dict[str, float]:
    status = asyncio.run(control.request(cluster.data_dir, {"command": "status"}))
    return {p["name"]: p["stored"]["entries"] for p in status["processes"] if p["stored"]}


def reader(target: str, key: str, resource: str, seconds: float,
           queue: multiprocessing.Queue[tuple[int, float]]) -> None:
    """One client process: read the blob again and again on its own connection; report bytes and CPU."""
    channel = grpc.insecure_channel(target, options=OPTIONS)
    read = channel.unary_stream(READ_METHOD, request_serializer=bs_pb2.ReadRequest.SerializeToString,
                                response_deserializer=None)
    request = bs_pb2.ReadRequest(resource_name=resource)
    received = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in read(request, metadata=[("x-buildbuddy-api-key", key)]):
            received += len(message)
    channel.close()
    queue.put((received, time.process_time()))


def _cpu_seconds(cluster: ClusterProcess) -> dict[str, float]:
    """CPU time so far of the cluster's gateways and shards, by kind (from /proc)."""
    status = asyncio.run(control.request(cluster.data_dir, {"command": "status"}))
    used: dict[str, float] = {}
    for process in status["processes"]:
        fields = Path(f"/proc/{process['pid']}/stat").read_text().rpartition(")")[2].split()
        kind = "gateway" if process["name"].startswith("gateway") else process["name"].split("-")[0]
        used[kind] = used.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def read_throughput(cluster: ClusterProcess, blob: bytes, clients: int, seconds: float,
                    result: Result) -> None:
    """Aggregate MB/s of `clients` processes reading the same large blob through the public port."""
    client = CacheClient(cluster.grpc_target, cluster.admin_key)
    client.upload(blob)
    client.close()
    resource = f"blobs/{hashlib.sha256(blob).hexdigest()}/{len(blob)}"
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[tuple[int, float]] = context.Queue()
    workers = [context.Process(target=reader, args=(cluster.grpc_target, cluster.admin_key, resource, seconds,
                                                    queue)) for _ in range(clients)]
    before = _cpu_seconds(cluster)
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    reports = [queue.get() for _ in workers]
    elapsed = time.perf_counter() - began
    after = _cpu_seconds(cluster)
    for worker in workers:
        worker.join()
    result.read_mbps = sum(r[0] for r in reports) / elapsed / 1e6
    result.cores = {kind: (after[kind] - before.get(kind, 0.0)) / elapsed for kind in ("gateway", "cas")}
    result.cores["clients"] = sum(r[1] for r in reports) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--blob-mib", type=int, default=32)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()

    small = [os.urandom(64) + i.to_bytes(4, "big") for i in range(args.digests)]
    present = [digest(b) for b in small]
    absent = [digest(os.urandom(64)) for _ in range(args.digests)]
    large = os.urandom(args.blob_mib * 1024 * 1024)
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for name, shards, gateways in (("1 shard, 1 gateway", 1, 1), ("3 shards, 1 gateway", 3, 1),
                                       ("3 shards, 2 gateways", 3, 2)):
            cluster = start(root, f"c{shards}{gateways}", shards, gateways)
            try:
                result = results[name] = Result()
                if gateways == 1:
                    upload_small(cluster, small)
                    result.find_present = time_find_missing(cluster, present, args.runs, 0)
                    result.find_absent = time_find_missing(cluster, absent, args.runs, len(absent))
                    result.spread = spread(cluster)
                if shards == 3:
                    read_throughput(cluster, large, args.clients, args.seconds, result)
            finally:
                cluster.stop()

    one, three, two_gw = (results[n] for n in ("1 shard, 1 gateway", "3 shards, 1 gateway", "3 shards, 2 gateways"))
    print(f"\nFindMissingBlobs of {args.digests:,} digests through one gateway, median of {args.runs} (ms)\n")
    print(f"{'':<22}{'1 shard':>10}{'3 shards':>10}{'ratio':>8}{'goal':>8}")
    for label, a, b in (("all present", one.find_present, three.find_present),
                        ("all missing", one.find_absent, three.find_absent)):
        print(f"{label:<22}{a * 1e3:>10.1f}{b * 1e3:>10.1f}{b / a:>8.2f}{'<= 1.5':>8}")
    assert three.spread is not None
    mean = statistics.mean(three.spread.values())
    print(f"\nSpread of {args.digests:,} blobs x R=2 over 3 shards (entries per shard)\n")
    for shard, entries in sorted(three.spread.items()):
        print(f"  {shard:<8}{int(entries):>8}  ({(entries - mean) / mean:+.1%} from the mean)")
    print(f"\nByteStream Read, {args.clients} client processes, {args.blob_mib} MiB blob, {args.seconds:.0f} s "
          f"(aggregate MB/s; {os.cpu_count()} CPUs shared by everything)\n")
    print(f"{'':<22}{'1 gateway':>10}{'2 gateways':>12}{'ratio':>8}{'goal':>8}")
    print(f"{'3 shards, R=2':<22}{three.read_mbps:>10.0f}{two_gw.read_mbps:>12.0f}"
          f"{two_gw.read_mbps / three.read_mbps:>8.2f}{'>= 1.7':>8}")
    for kind in ("gateway", "cas", "clients"):
        label = {"gateway": "CPU: gateways", "cas": "CPU: shards", "clients": "CPU: clients"}[kind]
        print(f"{label:<22}{three.cores[kind]:>10.2f}{two_gw.cores[kind]:>12.2f}   (cores)")


if __name__ == "__main__":
    main()
