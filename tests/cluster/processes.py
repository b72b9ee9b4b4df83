"""`bbapi cluster` as a child process, and direct looks at its shards, for end-to-end tests."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from services.blobstore.access import Scope
from services.blobstore.cluster import membership
from services.blobstore.cluster.placement import Placement
from services.blobstore.local.verify import digest_of
from services.blobstore.remote.client import RemoteBlobAccess
from services.cluster import control
from services.common.resources import Digest
from tests.support.servers import ServeProcess


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
class ClusterProcess(ServeProcess):
    """`bbapi cluster` on free public ports, started and stopped like `bbapi serve`."""

    command: ClassVar[str] = "cluster"

    def child_logs(self) -> str:
        """Every child process's own log (the supervisor writes one file each), for a failing test to show."""
        return "".join(f"----- {path.name}\n{path.read_text(errors='replace')}"
                       for path in sorted((self.data_dir / "logs").glob("*.log")))

    def gateway_admins(self) -> dict[str, str]:
        """Each gateway's admin URL (its own /metrics, /readyz, /status/membership), from the supervisor."""
        status = asyncio.run(control.request(self.data_dir, {"command": "status"}))
        return {p["name"]: p["admin"] for p in status["processes"] if p["admin"]}

    def membership(self) -> membership.Membership:
        return membership.load(self.data_dir / "membership.json")

    def holders(self, scope: Scope, digests: list[Digest]) -> dict[Digest, set[str]]:
        """Which shards hold each digest, asked directly over the internal contract."""
        return asyncio.run(_holders(self.membership(), scope, digests))

    def placed(self, scope: Scope, digests: list[Digest]) -> list[tuple[Digest, set[str], set[str]]]:
        """(digest, the shards holding it, the owners the current table names) for every digest."""
        doc = self.membership()
        table = Placement.build(doc.members, doc.replication)
        held = self.holders(scope, digests)
        return [(d, held[d], set(table.owner_ids(d.hash))) for d in digests]

    def misplaced(self, scope: Scope, blobs: list[bytes]) -> list[tuple[Digest, set[str], set[str]]]:
        """Blobs not held by exactly their owners."""
        return [p for p in self.placed(scope, [digest_of(b) for b in blobs]) if p[1] != p[2]]


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
