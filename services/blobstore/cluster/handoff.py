"""Hinted hand-off: copies a stand-in holds for an owner that was down, delivered when it is back.

When a write cannot reach an owner, the next live member of the slot's preference list takes the
copy and this gateway records a hint (owner, key, holder). Every health-check tick, hints for
owners that are up again are replayed: the key is copied from its holder to the owner (skipped
if the owner has it meanwhile) and the hint is dropped.

Hints live in this gateway's memory, bounded per owner (BuildBuddy keeps the same 100,000).
A hint lost to a restart of the gateway or to overflow costs no data: the copy stays on its
holder and on the other replica, reads find it there and read repair (services.blobstore.cluster.repair)
puts it back on the owner the first time it is read or looked up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable

from services.blobstore.access import Key
from services.blobstore.cluster import metrics
from services.blobstore.cluster.copying import copy, for_each
from services.blobstore.cluster.liveness import Liveness
from services.blobstore.cluster.pool import ShardPool
from services.common.errors import ApiError, NotFound

log = logging.getLogger(__name__)

LIMIT = 100_000  # hints kept per owner
PARALLEL = 8  # copies in flight per owner during a replay


class HandoffQueue:
    def __init__(self, pool: ShardPool, liveness: Liveness, limit: int = LIMIT) -> None:
        self.pool = pool
        self.liveness = liveness
        self.limit = limit
        self._hints: dict[str, OrderedDict[Key, str]] = {}
        self._replays: dict[str, asyncio.Task[None]] = {}

    def add(self, owner: str, key: Key, holder: str) -> None:
        hints = self._hints.setdefault(owner, OrderedDict())
        if key not in hints and len(hints) >= self.limit:
            metrics.HANDOFFS_DROPPED.labels(owner).inc()
            return
        if key not in hints:
            metrics.HANDOFFS_QUEUED.labels(owner).inc()
        hints[key] = holder
        metrics.HANDOFFS_PENDING.labels(owner).set(len(hints))

    def holder(self, owner: str, key: Key) -> str | None:
        hints = self._hints.get(owner)
        return hints.get(key) if hints else None

    def any(self) -> bool:
        return any(self._hints.values())

    def pending(self) -> dict[str, int]:
        return {owner: len(hints) for owner, hints in self._hints.items() if hints}

    def keep_only(self, members: Iterable[str]) -> None:
        """Forget hints for members that left the membership."""
        for owner in set(self._hints) - set(members):
            metrics.HANDOFFS_DROPPED.labels(owner).inc(len(self._hints.pop(owner)))
            metrics.HANDOFFS_PENDING.labels(owner).set(0)

    def replay_ready(self) -> None:
        """Start a replay pass for every owner that is up and has hints (one pass at a time each)."""
        for owner, hints in self._hints.items():
            running = self._replays.get(owner)
            if hints and self.liveness.is_up(owner) and (running is None or running.done()):
                self._replays[owner] = asyncio.create_task(self._replay(owner))

    async def _replay(self, owner: str) -> None:
        hints = self._hints.get(owner, OrderedDict())
        delivered = 0

        async def deliver(hint: tuple[Key, str]) -> None:
            nonlocal delivered
            key, holder = hint
            if not (self.liveness.is_up(owner) and self.liveness.is_up(holder)):
                return  # kept for a later pass
            try:
                await copy(key, self.pool[holder], self.pool[owner])
            except NotFound:
                metrics.HANDOFFS_DROPPED.labels(owner).inc()  # the holder evicted it meanwhile
            except (ApiError, TimeoutError, KeyError) as err:
                log.debug("hand-off of %s to %s failed, kept for a later pass: %s", key, owner, err)
                return
            else:
                delivered += 1
                metrics.HANDOFFS_REPLAYED.labels(owner).inc()
            if hints.get(key) == holder:
                del hints[key]

        await for_each(list(hints.items()), deliver, PARALLEL)
        metrics.HANDOFFS_PENDING.labels(owner).set(len(hints))
        if delivered:
            log.info("hand-off to %s: %d delivered, %d pending", owner, delivered, len(hints))

    async def close(self) -> None:
        for task in self._replays.values():
            task.cancel()
        await asyncio.gather(*self._replays.values(), return_exceptions=True)
