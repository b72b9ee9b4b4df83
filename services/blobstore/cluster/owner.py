"""The cluster tier's owner: builds the sharded, replicated stack over the members and keeps it in
step with the membership.

The membership is either fixed (the all-in-one: one in-process member) or a file re-read every
`POLL_SECONDS` (a ConfigMap in Kubernetes, replaced by `bbapi cluster` on one machine); a changed
document is adopted as a whole: members' stores, placement tables, migration. The same tick
health-checks the members and replays hinted hand-offs to those that are back.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from services.blobstore.access import BlobAccessDecorator
from services.blobstore.cluster import membership as membership_file
from services.blobstore.cluster.handoff import HandoffQueue
from services.blobstore.cluster.liveness import Liveness
from services.blobstore.cluster.membership import Membership, Progress
from services.blobstore.cluster.migration import Migration
from services.blobstore.cluster.placement import Placement
from services.blobstore.cluster.pool import Connect, ShardPool
from services.blobstore.cluster.repair import Repairer
from services.blobstore.cluster.replication import Replicator
from services.blobstore.cluster.routing import Router, Routes, Tables
from services.blobstore.cluster.sharding import ShardedBlobAccess
from services.common.errors import ApiError

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


async def _tables(membership: Membership) -> Tables:
    """Build the placement tables off the event loop's critical path (~0.1 s per member)."""
    current = await asyncio.to_thread(Placement.build, membership.members, membership.replication)
    previous = None
    if membership.previous is not None:
        previous = await asyncio.to_thread(Placement.build, membership.previous.members, membership.replication)
    return Tables(current, previous)


class Cluster(BlobAccessDecorator):
    """The members as one BlobAccess (a ShardedBlobAccess), plus the upkeep that keeps it right."""

    def __init__(self, membership: Membership, path: Path | None, pool: ShardPool, liveness: Liveness,
                 handoff: HandoffQueue, repairer: Repairer, routes: Routes) -> None:
        super().__init__(ShardedBlobAccess(routes, pool, liveness, handoff, Replicator(pool, liveness, handoff,
                                                                                       repairer)))
        self.membership = membership
        self.path = path
        self.pool = pool
        self.liveness = liveness
        self.handoff = handoff
        self.repairer = repairer
        self.routes = routes
        self.migration = Migration(pool)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, membership: Membership, connect: Connect, path: Path | None = None) -> Cluster:
        """Serve `membership` through stores made by `connect`; with `path`, follow that file's changes."""
        pool = ShardPool(connect)
        liveness = Liveness(pool)
        repairer = Repairer(pool, liveness)
        routes = Routes(Router(await _tables(membership), liveness))
        cluster = cls(membership, path, pool, liveness, HandoffQueue(pool, liveness), repairer, routes)
        cluster._adopt(membership, routes.current)
        repairer.start()
        cluster._task = asyncio.create_task(cluster._watch())
        return cluster

    async def ready(self) -> bool:
        """Some current member passed its last health check (with R > 1 a gateway serves through
        a dead member; with none up it can serve nothing)."""
        return any(self.liveness.is_up(m.id) for m in self.membership.members)

    def _adopt(self, membership: Membership, router: Router) -> None:
        everyone = membership.everyone()
        self.pool.sync(everyone)
        self.handoff.keep_only(m.id for m in everyone)
        self.routes.current = router
        self.membership = membership
        self.migration.begin(membership, router)
        log.info("CAS membership %s: %d members, R=%d%s", membership.generation[:12], len(membership.members),
                 membership.replication,
                 f", migrating from {len(membership.previous.members)}" if membership.previous else "")

    async def reload(self) -> None:
        """Adopt the file's document if it changed; an unreadable one is logged and ignored."""
        if self.path is None:
            return
        try:
            loaded = membership_file.load(self.path)
        except ApiError as err:
            log.error("keeping CAS membership %s: %s", self.membership.generation[:12], err.message)
            return
        if loaded.generation != self.membership.generation:
            self._adopt(loaded, Router(await _tables(loaded), self.liveness))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.reload()
                await self.liveness.probe()
                self.handoff.replay_ready()
            except Exception:
                log.exception("CAS cluster upkeep failed; trying again")

    def status(self) -> Progress:
        return self.migration.progress

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.migration.close()
        await self.handoff.close()
        await self.repairer.close()
        await self.pool.close()
