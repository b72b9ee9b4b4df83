"""The servers the benches put side by side: bbapi as a user starts it, and BuildGrid from PyPI.

BuildGrid is the Python peer a user would pick instead of bbapi. It is installed once, by the
bench itself, into its own venv under ~/.cache/bbapi-bench (or $BBAPI_BENCH_CACHE), so its
dependencies never meet bbapi's, and it runs CAS, ByteStream and the action cache only, with
disk storage, as a remote cache for Bazel.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from tests.cluster.processes import ClusterProcess
from tests.support.servers import ServeProcess

BUILDGRID = "buildgrid==0.4.4"
CACHE = Path(os.environ.get("BBAPI_BENCH_CACHE", Path.home() / ".cache" / "bbapi-bench"))

# CAS + ByteStream + action cache on one disk storage, no auth, no monitoring; room for as many
# calls at once as Bazel makes (BuildGrid's default, 5 per core, refuses the rest). The action cache
# keeps its entries in memory (BuildGrid's LRU cache); it holds far more than a bench writes.
BUILDGRID_CONFIG = """\
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
authorization:
  method: none
monitoring:
  enabled: false
thread-pool-size: 64
storages:
  - !disk-storage &cas
    path: {path}
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 10000000
    allow-updates: true
    cache-failed-actions: true
instances:
  - name: ""
    services:
      - !action-cache
        cache: *ac
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
"""


def start_serve(root: Path) -> ServeProcess:
    """`bbapi serve`: every service in one process."""
    return ServeProcess(root, extra=["--log-level", "warning"]).start()


def start_cluster(root: Path) -> ClusterProcess:
    """`bbapi cluster` with one gateway and one CAS shard: the same code as serve, plus the internal hop."""
    return ClusterProcess(root, extra=["--gateways", "1", "--cas-shards", "1", "--replication", "1",
                                       "--log-level", "warning"]).start()


def buildgrid_venv() -> Path:
    """The `bgd` command of BuildGrid's own venv, installed from PyPI on first use."""
    venv = CACHE / f"{BUILDGRID.replace('==', '-')}-venv"
    bgd = venv / "bin" / "bgd"
    if not bgd.exists():
        print(f"installing {BUILDGRID} into {venv} (once)", flush=True)
        for command in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                        [str(venv / "bin" / "pip"), "install", "-q", BUILDGRID]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return bgd


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_serving(address: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until the server at `address` answers GetCapabilities (or its process died)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = re_grpc.CapabilitiesStub(channel)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{address} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                stub.GetCapabilities(re_pb2.GetCapabilitiesRequest(), timeout=2)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@contextlib.contextmanager
def buildgrid(root: Path) -> Iterator[str]:
    """A BuildGrid remote cache storing on disk under `root`; yields its host:port."""
    with buildgrid_process(root) as (address, _pid):
        yield address


@contextlib.contextmanager
def buildgrid_process(root: Path) -> Iterator[tuple[str, int]]:
    """The same, yielding (host:port, the server's pid) for benches that measure its CPU."""
    bgd = buildgrid_venv()
    root.mkdir(parents=True)
    port = free_port()
    config = root / "buildgrid.yml"
    config.write_text(BUILDGRID_CONFIG.format(port=port, path=root / "cas"))
    log = root / "buildgrid.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(bgd), "server", "start", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_serving(f"127.0.0.1:{port}", proc, log)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
