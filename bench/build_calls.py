"""The cache calls of a real build, replayed: server CPU and wall time per action, next to the ceiling.

    python bench/build_calls.py [--actions 300] [--outputs 8] [--jobs 4] [--runs 3]

What Bazel 4.2 sends a remote cache for each action of `bench/bazel.py`'s workspace, from a
grpc.aio client with JOBS actions in flight: a cold build (GetActionResult that misses,
FindMissingBlobs of the outputs, a ByteStream Write of each output in Bazel's 16 KiB messages,
UpdateActionResult) and a rebuild (GetActionResult that hits, a ByteStream Read of each output, all
at once).
Outputs are 1-64 KiB (log-uniform), as in the workspace. Servers: the bare grpc.aio server of
bench/bare.py (the ceiling: memory, no checks), BuildGrid (bench/peers.py), `bbapi serve` and
`bbapi cluster` (one gateway, one shard). Per action the table gives the CPU the server's
processes used (user + system, from /proc, summed over a server's process tree) and the wall
time, medians of RUNS interleaved runs. CPU is what a 2-core machine shares with Bazel itself:
it is the figure that decides a real build's time there, and it is steadier than wall time
on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bare
from bench.peers import buildgrid_process, start_cluster, start_serve
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from services.gen.google.bytestream import bytestream_pb2 as bs_pb2
from services.gen.google.bytestream import bytestream_pb2_grpc as bs_grpc
from tests.support.clients import CHUNK, digest

NAMES = ("bare grpc.aio", "BuildGrid 0.4.4", "bbapi serve", "bbapi cluster")
SHORT = dict(zip(("bare", "buildgrid", "serve", "cluster"), NAMES, strict=True))
# Besides its outputs, Bazel 4.2 uploads each action's Action, Command and input root Directory.
PROTOS = (150, 300, 100)
LARGE_EVERY, LARGE_SIZE = 50, 4 * 1024 * 1024  # as bench/bazel.py's workspace


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (threads included)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                children = task / "children"
                if children.exists():
                    pending += [int(child) for child in children.read_text().split()]
    return total


@dataclass
class Action:
    """One genrule's worth of cache traffic: its action digest, result and output blobs."""

    digest: re_pb2.Digest
    outputs: list[bytes]

    uploads: list[bytes]  # the outputs, then the action's own protos

    @classmethod
    def generate(cls, rng: random.Random, index: int, outputs: int) -> Action:
        blobs = [rng.randbytes(int(1024 * 64 ** rng.random())) for _ in range(outputs)]
        if index % LARGE_EVERY == 0:
            blobs[0] = rng.randbytes(LARGE_SIZE)
        return cls(digest(uuid.uuid4().bytes), blobs, blobs + [rng.randbytes(size) for size in PROTOS])

    def result(self) -> re_pb2.ActionResult:
        return re_pb2.ActionResult(output_files=[
            re_pb2.OutputFile(path=f"out/{i}", digest=digest(b)) for i, b in enumerate(self.outputs)])


class Client:
    def __init__(self, target: str, key: str | None) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
        self.metadata = (("x-buildbuddy-api-key", key),) if key else ()
        self.cas = re_grpc.ContentAddressableStorageStub(self.channel)
        self.ac = re_grpc.ActionCacheStub(self.channel)
        self.bytestream = bs_grpc.ByteStreamStub(self.channel)

    async def cold(self, action: Action) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action.digest),
                                          metadata=self.metadata)
            raise RuntimeError("a new action hit the cache")
        digests = [digest(b) for b in action.uploads]
        missing = await self.cas.FindMissingBlobs(re_pb2.FindMissingBlobsRequest(blob_digests=digests),
                                                  metadata=self.metadata)
        wanted = {d.hash for d in missing.missing_blob_digests}
        await asyncio.gather(*(self.write(b, d) for b, d in zip(action.uploads, digests, strict=True)
                               if d.hash in wanted))
        await self.ac.UpdateActionResult(re_pb2.UpdateActionResultRequest(action_digest=action.digest,
                                                                          action_result=action.result()),
                                         metadata=self.metadata)

    async def write(self, data: bytes, d: re_pb2.Digest) -> None:
        resource = f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"

        async def requests() -> AsyncIterator[bs_pb2.WriteRequest]:
            for offset in range(0, len(data), CHUNK):
                last = offset + CHUNK >= len(data)
                yield bs_pb2.WriteRequest(resource_name=resource if offset == 0 else "", write_offset=offset,
                                          data=data[offset:offset + CHUNK], finish_write=last)

        response = await self.bytestream.Write(requests(), metadata=self.metadata)
        if response.committed_size not in (len(data), -1):
            raise RuntimeError(f"write of {d.size_bytes} bytes committed {response.committed_size}")

    async def rebuild(self, action: Action) -> None:
        result = await self.ac.GetActionResult(re_pb2.GetActionResultRequest(action_digest=action.digest),
                                               metadata=self.metadata)
        got = await asyncio.gather(*(self.read(output.digest) for output in result.output_files))
        if got != action.outputs:
            raise RuntimeError("a read returned other bytes")

    async def read(self, d: re_pb2.Digest) -> bytes:
        request = bs_pb2.ReadRequest(resource_name=f"blobs/{d.hash}/{d.size_bytes}")
        return b"".join([r.data async for r in self.bytestream.Read(request, metadata=self.metadata)])


async def jobs(actions: list[Action], step: Callable[[Action], Coroutine[Any, Any, None]], parallel: int) -> None:
    queue = list(reversed(actions))

    async def worker() -> None:
        while queue:
            await step(queue.pop())

    await asyncio.gather(*(worker() for _ in range(parallel)))


async def measure(target: str, key: str | None, pid: int, actions: list[Action],
                  parallel: int) -> dict[str, tuple[float, float]]:
    """(server CPU, wall) seconds per action of the cold build and of the rebuild."""
    client = Client(target, key)
    figures = {}
    try:
        for phase, step in (("cold", client.cold), ("rebuild", client.rebuild)):
            cpu, start = cpu_seconds(pid), time.perf_counter()
            await jobs(actions, step, parallel)
            figures[phase] = ((cpu_seconds(pid) - cpu) / len(actions), (time.perf_counter() - start) / len(actions))
    finally:
        await client.channel.close()
    return figures


def start(name: str, root: Path, stack: contextlib.ExitStack) -> tuple[str, str | None, int]:
    """Start one server under test: (its address, its API key, its pid)."""
    if name == "bare grpc.aio":
        proc, address = bare.start()
        stack.callback(proc.wait)
        stack.callback(proc.terminate)
        return address, None, proc.pid
    if name == "BuildGrid 0.4.4":
        address, pid = stack.enter_context(buildgrid_process(root / "buildgrid"))
        return address, None, pid
    server = (start_serve if name == "bbapi serve" else start_cluster)(root / name.split()[1])
    stack.callback(server.stop)
    assert server.proc is not None
    return server.grpc_target, server.admin_key, server.proc.pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=300)
    parser.add_argument("--outputs", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(SHORT), help=f"servers, comma-separated: {','.join(SHORT)}")
    args = parser.parse_args()
    chosen = tuple(SHORT[name] for name in args.only.split(","))
    rng = random.Random(0)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bbapi-bench-calls-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        targets = {name: start(name, root, stack) for name in chosen}
        print("server pids: " + ", ".join(f"{name} {pid}" for name, (_, _, pid) in targets.items()), flush=True)
        results: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in NAMES}
        for run in range(args.runs + 1):  # run 0 warms every server and client path, untimed
            for name in chosen[run % len(chosen):] + chosen[:run % len(chosen)]:
                actions = [Action.generate(rng, i, args.outputs) for i in range(args.actions)]
                figures = asyncio.run(measure(*targets[name], actions, args.jobs))
                if run:
                    for phase, value in figures.items():
                        results[name].setdefault(phase, []).append(value)

    def cell(name: str, phase: str) -> str:
        cpu = statistics.median(v[0] for v in results[name][phase]) * 1000
        wall = statistics.median(v[1] for v in results[name][phase]) * 1000
        floor = statistics.median(v[0] for v in results["bare grpc.aio"][phase]) * 1000 \
            if results["bare grpc.aio"] else 0
        ratio = f" ({cpu / floor:.1f}x bare)" if floor and name != "bare grpc.aio" else ""
        return f"{cpu:.2f} ms CPU{ratio}, {wall:.2f} ms wall"

    print(f"\n{args.actions} actions x {args.outputs} outputs (1-64 KiB), {args.jobs} in flight; medians of "
          f"{args.runs} interleaved runs; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
          f"end, {os.cpu_count()} cores; per action: server CPU (all its processes) and wall time\n")
    print("| per action | " + " | ".join(chosen) + " |")
    print("|" + " --- |" * (len(chosen) + 1))
    for phase, label in (("cold", "cold: GetActionResult miss, FindMissingBlobs, Writes, UpdateActionResult"),
                         ("rebuild", "rebuild: GetActionResult hit, Reads")):
        print(f"| {label} | " + " | ".join(cell(name, phase) for name in chosen) + " |")


if __name__ == "__main__":
    main()
