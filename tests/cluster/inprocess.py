"""CAS shards and a sharded gateway stack in this process, on loopback ports, for decorator tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.blobstore import stack as blobstore
from services.blobstore.access import Kind, Scope
from services.blobstore.cluster import membership
from services.blobstore.cluster.membership import Member, MemberList, Membership
from services.blobstore.cluster.owner import Cluster
from services.cas import service as cas
from services.cas.settings import CasSettings
from services.common.resources import Digest


async def chunks(data: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    """Wait until `check()` holds (background work: hand-offs, repairs, migration)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {within}s")
        await asyncio.sleep(0.1)


@dataclass
class Shard:
    """One CAS shard service that can be stopped and started again on the same port and disk."""

    id: str
    data_dir: Path
    port: int = 0
    service: cas.CasService | None = None
    zone: str | None = None

    async def start(self) -> Shard:
        self.service = await cas.start(CasSettings(host="127.0.0.1", port=self.port, data_dir=self.data_dir,
                                                   shard_id=self.id, metrics_port=0, min_age_seconds=0))
        self.port = self.service.server.port
        return self

    async def stop(self) -> None:
        assert self.service is not None
        await self.service.server.server.stop(0)
        await self.service.store.close()
        self.service = None

    @property
    def member(self) -> Member:
        return Member(id=self.id, address=f"127.0.0.1:{self.port}", zone=self.zone)

    async def holds(self, scope: Scope, digest: Digest) -> bool:
        assert self.service is not None
        return not await self.service.store.find_missing(scope, [digest])

    async def holds_result(self, scope: Scope, action: Digest) -> bool:
        assert self.service is not None
        listed = self.service.store.list_keys()  # every key the shard holds, as ListKeys sends them
        return any([k.kind is Kind.AC and k.digest == action and k.scope == scope async for k in listed])


@dataclass
class Stack:
    """Shards, the membership file naming them, and a gateway's cluster tier over it."""

    root: Path
    shards: dict[str, Shard] = field(default_factory=dict)
    cluster: Cluster | None = None

    @property
    def path(self) -> Path:
        return self.root / "membership.json"

    async def add_shards(self, count: int) -> list[Shard]:
        added = []
        for _ in range(count):
            shard_id = f"cas-{len(self.shards)}"
            self.shards[shard_id] = shard = await Shard(shard_id, self.root / shard_id).start()
            added.append(shard)
        return added

    def write(self, ids: list[str], previous: list[str] | None = None, replication: int = 2) -> str:
        doc = Membership(members=tuple(self.shards[i].member for i in ids), replication=replication,
                         previous=MemberList(members=tuple(self.shards[i].member for i in previous))
                         if previous else None)
        return membership.write(self.path, doc)

    async def start(self, shards: int, replication: int = 2, zones: tuple[str, ...] = ()) -> Cluster:
        """`shards` shards, shard i in zones[i mod len(zones)] when zones are given."""
        for index, shard in enumerate(await self.add_shards(shards)):
            shard.zone = zones[index % len(zones)] if zones else None
        self.write(list(self.shards), replication=replication)
        self.cluster = (await blobstore.cluster_gateway(self.path)).cluster
        return self.cluster

    def owners(self, digest: Digest) -> list[Shard]:
        assert self.cluster is not None
        return [self.shards[i] for i in self.cluster.routes.current.owners(digest.hash)]

    async def holders(self, scope: Scope, digest: Digest) -> set[str]:
        return {s.id for s in self.shards.values() if s.service is not None and await s.holds(scope, digest)}

    async def close(self) -> None:
        if self.cluster is not None:
            await self.cluster.close()
        for shard in self.shards.values():
            if shard.service is not None:
                await shard.stop()
