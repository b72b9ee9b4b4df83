"""One server per port and per data directory, through the real `bbapi` command line.

A second `bbapi serve` on taken ports or a taken data directory must stop at once with one line
naming what is taken and what to change, instead of splitting Bazel's connections (SO_REUSEPORT)
or indexing the same blobs twice. `bbapi cluster` gateways still share their public ports.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from services.cas import service as cas
from services.cas.settings import CasSettings
from services.cli import exits
from services.cluster import control
from services.cluster.supervisor import free_port
from services.common.exclusive import DataDirLocked
from tests.cluster.processes import ClusterProcess, wait_for
from tests.support.servers import ServeProcess, bbapi

LOCAL = ["--host", "127.0.0.1", "--log-level", "warning"]


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start printed, after checking it exited as documented."""
    assert result.returncode == exits.IN_USE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[ServeProcess]:
    grpc_port, http_port = free_port(), free_port()
    running = ServeProcess(tmp_path / "first", ["--grpc-port", str(grpc_port), "--http-port", str(http_port),
                                                "--log-level", "warning"]).start()
    yield running
    assert running.stop() == 0


def test_a_second_serve_on_the_same_ports_exits_naming_the_port(serving: ServeProcess, tmp_path: Path) -> None:
    def second(name: str, grpc_port: int, http_port: int) -> str:
        return refusal(bbapi("serve", "--data-dir", str(tmp_path / name), *LOCAL,
                             "--grpc-port", str(grpc_port), "--http-port", str(http_port)))

    assert second("grpc", serving.grpc_port, free_port()) == (
        f"error: cannot listen on 127.0.0.1:{serving.grpc_port}: the port is in use (another bbapi running?); "
        "choose another port with --grpc-port")
    assert second("http", free_port(), serving.http_port) == (
        f"error: cannot listen on 127.0.0.1:{serving.http_port}: the port is in use (another bbapi running?); "
        "choose another port with --http-port")
    assert "the port is in use" in second("both", serving.grpc_port, serving.http_port)
    assert httpx.get(f"http://127.0.0.1:{serving.http_port}/readyz").json()["ready"]  # the first serves on


def test_a_second_serve_on_the_same_data_dir_exits_naming_the_owner(serving: ServeProcess) -> None:
    assert serving.proc is not None
    line = refusal(bbapi("serve", "--data-dir", str(serving.data_dir), *LOCAL,
                         "--grpc-port", str(free_port()), "--http-port", str(free_port())))
    assert line == (f"error: data directory {serving.data_dir.resolve()} is in use by another bbapi process "
                    f"(pid {serving.proc.pid}); stop it or choose another directory with --data-dir")


def test_a_data_dir_is_free_again_once_its_server_is_gone(tmp_path: Path) -> None:
    """The lock dies with its process, even one killed without a chance to clean up."""
    first = ServeProcess(tmp_path).start()
    assert first.stop(sig=9) == -9
    second = ServeProcess(tmp_path).start()
    assert httpx.get(f"http://127.0.0.1:{second.http_port}/readyz").json()["ready"]
    assert second.stop() == 0


def listening_pids(port: int) -> set[int]:
    return {c.pid for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid is not None}


def test_cluster_gateways_share_their_ports_and_strangers_are_refused(tmp_path: Path) -> None:
    cluster = ClusterProcess(tmp_path / "cluster", ["--gateways", "2", "--cas-shards", "1", "--replication", "1",
                                                    "--log-level", "warning"]).start()
    try:
        status = asyncio.run(control.request(cluster.data_dir, {"command": "status"}))
        gateways = {p["pid"] for p in status["processes"] if p["name"].startswith("gateway-")}
        assert len(gateways) == 2
        # the supervisor reports the cluster up once a gateway answers; the other may still be starting
        wait_for(lambda: listening_pids(cluster.grpc_port) == listening_pids(cluster.http_port) == gateways,
                 what="both gateways listening on both public ports")

        serve = refusal(bbapi("serve", "--data-dir", str(tmp_path / "serve"), *LOCAL,
                              "--grpc-port", str(cluster.grpc_port), "--http-port", str(free_port())))
        assert serve.endswith(f"127.0.0.1:{cluster.grpc_port}: the port is in use (another bbapi running?); "
                              "choose another port with --grpc-port")
        other = refusal(bbapi("cluster", "--data-dir", str(tmp_path / "other"), *LOCAL,
                              "--grpc-port", str(cluster.grpc_port), "--http-port", str(cluster.http_port)))
        assert other.endswith("choose another port with --grpc-port")
        assert not (tmp_path / "other" / "logs").exists()  # refused before any process started
        same_dir = refusal(bbapi("cluster", "--data-dir", str(cluster.data_dir), *LOCAL,
                                 "--grpc-port", str(free_port()), "--http-port", str(free_port())))
        assert cluster.proc is not None
        assert f"data directory {cluster.data_dir.resolve()} is in use" in same_dir
        assert f"(pid {cluster.proc.pid})" in same_dir
        assert (cluster.data_dir / control.SOCKET_NAME).exists()  # the running supervisor's socket is untouched
        assert asyncio.run(control.request(cluster.data_dir, {"command": "status"}))["grpc_port"] == cluster.grpc_port
    finally:
        assert cluster.stop() == 0


async def test_a_cas_shard_owns_its_directory(tmp_path: Path) -> None:
    settings = CasSettings(host="127.0.0.1", port=0, data_dir=tmp_path / "cas-0", metrics_port=0)
    first = await cas.start(settings)
    try:
        with pytest.raises(DataDirLocked, match=rf"data directory {tmp_path}/cas-0 is in use .* \(pid {os.getpid()}\)"):
            await cas.start(settings)
    finally:
        await first.stop()
    again = await cas.start(settings)  # stopping released it
    await again.stop()
