"""The gateway's CAS in a cluster: the sharded stack over the members named in the membership file.

Started from the file and kept in step with it: every `POLL_SECONDS` the file is re-read (it
is a ConfigMap in Kubernetes, replaced by `bbapi cluster` on one machine) and a changed document
is adopted as a whole: connections, placement tables, migration. The same tick health-checks
the members and replays hinted hand-offs to those that are back.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from services.common import membership as membership_file
from services.common.blobaccess import BlobAccessDecorator
from services.common.errors import ApiError
from services.common.membership import Membership
from services.common.placement import Placement
from services.gateway.handoff import HandoffQueue
from services.gateway.liveness import Liveness
from services.gateway.members import ShardPool
from services.gateway.migration import Migration, Progress
from services.gateway.repair import Repairer
from services.gateway.routing import Router, Tables
from services.gateway.sharded import ShardedBlobAccess

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


async def _tables(membership: Membership) -> Tables:
    """Build the placement tables off the event loop's critical path (~0.1 s per member)."""
    current = await asyncio.to_thread(Placement.build, membership.members, membership.replication)
    previous = None
    if membership.previous is not None:
        previous = await asyncio.to_thread(Placement.build, membership.previous.members, membership.replication)
    return Tables(current, previous)


class CasCluster(BlobAccessDecorator):
    backend: ShardedBlobAccess

    def __init__(self, path: Path, membership: Membership, sharded: ShardedBlobAccess, migration: Migration) -> None:
        super().__init__(sharded)
        self.path = path
        self.membership = membership
        self.migration = migration
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, path: Path) -> CasCluster:
        membership = membership_file.load(path)
        pool = ShardPool()
        liveness = Liveness(pool)
        repairer = Repairer(pool, liveness)
        sharded = ShardedBlobAccess(pool, liveness, HandoffQueue(pool, liveness), repairer,
                                    Router(await _tables(membership), liveness))
        cluster = cls(path, membership, sharded, Migration(pool))
        cluster._adopt(membership, sharded.router)
        repairer.start()
        cluster._task = asyncio.create_task(cluster._watch())
        return cluster

    async def ready(self) -> bool:
        """Some current member passed its last health check (with R > 1 a gateway serves through
        a dead member; with none up it can serve nothing)."""
        return any(self.backend.liveness.is_up(m.id) for m in self.membership.members)

    def _adopt(self, membership: Membership, router: Router) -> None:
        everyone = membership.everyone()
        self.backend.pool.sync(everyone)
        self.backend.handoff.keep_only(m.id for m in everyone)
        self.backend.router = router
        self.membership = membership
        self.migration.begin(membership, router)
        log.info("CAS membership %s: %d members, R=%d%s", membership.generation[:12], len(membership.members),
                 membership.replication,
                 f", migrating from {len(membership.previous.members)}" if membership.previous else "")

    async def reload(self) -> None:
        """Adopt the file's document if it changed; an unreadable one is logged and ignored."""
        try:
            loaded = membership_file.load(self.path)
        except ApiError as err:
            log.error("keeping CAS membership %s: %s", self.membership.generation[:12], err.message)
            return
        if loaded.generation != self.membership.generation:
            self._adopt(loaded, Router(await _tables(loaded), self.backend.liveness))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.reload()
                await self.backend.liveness.probe()
                self.backend.handoff.replay_ready()
            except Exception:
                log.exception("CAS cluster upkeep failed; trying again")

    def status(self) -> Progress:
        return self.migration.progress

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.migration.close()
        await self.backend.handoff.close()
        await self.backend.repairer.close()
        await self.backend.pool.close()
