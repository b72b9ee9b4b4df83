"""Moving data to a new membership while the old one is still consulted.

When the membership file names `previous` members, writes already follow the new table and
reads try new owners, then old ones (services.blobstore.cluster.routing). This copier makes the old
table unnecessary: it lists every key on every member (the shard's ListKeys), copies each to
those of its new owners that lack it, and removes it from members that no longer own it once
every new owner has it. A pass that could not finish (a member down) is retried; when one pass
completes, `migrating` turns false and whoever wrote the file (operator, `bbapi cluster`) may
drop `previous`.

Every gateway runs its own pass, starting `SETTLE_SECONDS` after it adopted the document, so
that by then every gateway writes to the new table; a key written to an old owner by a gateway
that had not yet adopted it is therefore listed by the pass. The operator waits for every
gateway; `bbapi cluster` asks one of them, which the settle delay makes safe on one machine.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict
from collections.abc import Sequence

from services.blobstore.access import Key, Kind, Scope
from services.blobstore.cluster import metrics
from services.blobstore.cluster.copying import copy, for_each
from services.blobstore.cluster.membership import Membership, Progress
from services.blobstore.cluster.pool import ShardPool
from services.blobstore.cluster.routing import Router
from services.blobstore.streams import closing
from services.common.errors import ApiError, NotFound

log = logging.getLogger(__name__)

SETTLE_SECONDS = 3.0
RETRY_SECONDS = 5.0
BATCH = 1000  # keys moved per step (the shard lists in batches of this size)
PARALLEL = 8  # copies in flight


def _publish(progress: Progress) -> None:
    metrics.MIGRATING.set(1 if progress.migrating else 0)
    metrics.MIGRATION_SCANNED.set(progress.scanned)
    metrics.MIGRATION_COPIED.set(progress.copied)
    metrics.MIGRATION_REMOVED.set(progress.removed)


class Migration:
    def __init__(self, pool: ShardPool) -> None:
        self.pool = pool
        self.progress = Progress("", migrating=False)
        self._task: asyncio.Task[None] | None = None

    def begin(self, membership: Membership, router: Router) -> None:
        """Follow a newly adopted document: copy if it names `previous`, else report idle."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.progress = Progress(membership.generation, migrating=membership.previous is not None)
        _publish(self.progress)
        if membership.previous is not None:
            members = [m.id for m in membership.everyone()]
            self._task = asyncio.create_task(self._run(router, members))

    async def _run(self, router: Router, members: list[str]) -> None:
        await asyncio.sleep(SETTLE_SECONDS)
        log.info("migrating CAS data to the new membership (generation %s)", self.progress.generation[:12])
        for attempt in itertools.count(1):
            if await self._pass(router, members):
                break
            log.info("migration pass %d incomplete; retrying in %.0fs", attempt, RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)
        self.progress.migrating = False
        _publish(self.progress)
        log.info("migration done: %d keys scanned, %d copied, %d removed from former owners",
                 self.progress.scanned, self.progress.copied, self.progress.removed)

    async def _pass(self, router: Router, members: list[str]) -> bool:
        complete = True
        for member in members:
            try:
                batch: list[Key] = []
                async with closing(self.pool[member].list_keys()) as listing:
                    async for stored in listing:
                        batch.append(stored)
                        if len(batch) >= BATCH:
                            await self._move(router, member, batch)
                            batch = []
                if batch:
                    await self._move(router, member, batch)
            except (ApiError, TimeoutError) as err:
                log.warning("migration: the keys of %s could not all be moved yet: %s", member, err)
                complete = False
            except Exception:
                log.exception("migration: moving the keys of %s failed unexpectedly", member)
                complete = False
        return complete

    async def _move(self, router: Router, member: str, keys: Sequence[Key]) -> None:
        """Give every key to each of its new owners, then drop it here if this member is not one."""
        self.progress.scanned += len(keys)
        owners = {key: router.owners(key.digest.hash) for key in keys}
        copies: list[tuple[Key, str]] = []
        probes: dict[tuple[str, Scope], list[Key]] = defaultdict(list)
        for key, ids in owners.items():
            for owner in ids:
                if owner == member:
                    continue
                if key.kind is Kind.CAS:
                    probes[owner, key.scope].append(key)
                else:
                    copies.append((key, owner))  # copy() itself leaves a present action result alone
        for (owner, scope), wanted in probes.items():
            absent = set(await self.pool[owner].find_missing(scope, [k.digest for k in wanted]))
            copies += [(k, owner) for k in wanted if k.digest in absent]

        async def give(job: tuple[Key, str]) -> None:
            key, owner = job
            try:
                if await copy(key, self.pool[member], self.pool[owner]):
                    self.progress.copied += 1
            except NotFound:
                pass  # gone since it was listed: moved by another gateway, or evicted

        await for_each(copies, give, PARALLEL)

        async def drop(key: Key) -> None:
            source = self.pool[member]
            removed = await (source.delete(key.scope, key.digest) if key.kind is Kind.CAS
                             else source.delete_action_result(key.scope, key.digest))
            self.progress.removed += int(removed)

        await for_each([key for key, ids in owners.items() if member not in ids], drop, PARALLEL)
        _publish(self.progress)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
