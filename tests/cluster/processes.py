"""`bbapi cluster` as a child process, and direct looks at its shards, for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.cas.local import digest_of
from services.common import membership
from services.common.blobaccess import Scope
from services.common.placement import Placement
from services.common.resources import Digest
from services.gateway.remote import RemoteBlobAccess


def bbapi(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def wait_for(check: Callable[[], bool], within: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still false after {within}s")
        time.sleep(0.2)


@dataclass
class ClusterProcess:
    """`bbapi cluster` on free public ports; the banner gives the ports, the key and the pids."""

    data_dir: Path
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    grpc_port: int = 0
    http_port: int = 0
    admin_key: str | None = None
    pids: dict[str, int] = field(default_factory=dict)

    def start(self, timeout: float = 120) -> ClusterProcess:
        cmd = [sys.executable, "-m", "services.cli.main", "cluster", "--data-dir", str(self.data_dir),
               "--grpc-port", "0", "--http-port", "0", "--host", "127.0.0.1", "--log-level", "warning", *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("bbapi cluster exited:\n" + "".join(self.output))
            self.output.append(line)
            if match := re.search(r"gRPC\s+grpc://[^:]+:(\d+)", line):
                self.grpc_port = int(match[1])
            if match := re.search(r"HTTP\s+http://[^:]+:(\d+)", line):
                self.http_port = int(match[1])
            if match := re.match(r"\s+(\S+)\s+pid (\d+)", line):
                self.pids[match[1]] = int(match[2])
            if "Admin API key" in line:
                self.admin_key = self.proc.stdout.readline().strip()
                self.output.append(self.admin_key + "\n")
            if line.startswith("Press Ctrl-C"):
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise TimeoutError("bbapi cluster did not start:\n" + "".join(self.output))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def status(self) -> dict[str, Any]:
        done = bbapi("cluster", "status", "--data-dir", str(self.data_dir))
        assert done.returncode == 0, done.stderr
        return {"text": done.stdout}

    def membership(self) -> membership.Membership:
        return membership.load(self.data_dir / "membership.json")

    def holders(self, scope: Scope, digests: list[Digest]) -> dict[Digest, set[str]]:
        """Which shards hold each digest, asked directly over the internal contract."""
        return asyncio.run(_holders(self.membership(), scope, digests))

    def misplaced(self, scope: Scope, blobs: list[bytes]) -> list[tuple[Digest, set[str], set[str]]]:
        """Blobs not held by exactly the owners the current table names: (digest, holders, owners)."""
        doc = self.membership()
        table = Placement.build(doc.members, doc.replication)
        digests = [digest_of(b) for b in blobs]
        held = self.holders(scope, digests)
        return [(d, held[d], set(table.owner_ids(d.hash))) for d in digests if held[d] != set(table.owner_ids(d.hash))]


async def _holders(doc: membership.Membership, scope: Scope, digests: list[Digest]) -> dict[Digest, set[str]]:
    held: dict[Digest, set[str]] = {d: set() for d in digests}
    for member in doc.members:
        shard = RemoteBlobAccess(member.address)
        try:
            missing = set(await shard.find_missing(scope, digests))
        finally:
            await shard.close()
        for digest in digests:
            if digest not in missing:
                held[digest].add(member.id)
    return held


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
