"""Read repair: a replica that missed a key gets it copied from the member that had it.

Reads and lookups take the first hit; owners asked before it that answered "missing" (back
from an outage, lost a disk, or new in a membership change) are repaired in the background so
the caller never waits for it. The queue is bounded and deduplicated; when full, repairs are
skipped (counted) and happen on a later read instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from services.blobstore.access import Key
from services.blobstore.cluster import metrics
from services.blobstore.cluster.copying import copy
from services.blobstore.cluster.liveness import Liveness
from services.blobstore.cluster.pool import ShardPool
from services.common.errors import ApiError

log = logging.getLogger(__name__)

QUEUE = 10_000
WORKERS = 4

Job = tuple[Key, str, str]  # key, source member, target member


class Repairer:
    def __init__(self, pool: ShardPool, liveness: Liveness) -> None:
        self.pool = pool
        self.liveness = liveness
        self._queue: asyncio.Queue[Job] = asyncio.Queue(QUEUE)
        self._queued: set[Job] = set()
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work()) for _ in range(WORKERS)]

    def schedule(self, key: Key, source: str, targets: Iterable[str]) -> None:
        for target in targets:
            job = (key, source, target)
            if job in self._queued:
                continue
            if self._queue.full():
                metrics.REPAIRS_DROPPED.inc()
                continue
            self._queued.add(job)
            self._queue.put_nowait(job)

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            key, source, target = job
            try:
                up = self.liveness.is_up(source) and self.liveness.is_up(target)
                if up and await copy(key, self.pool[source], self.pool[target]):
                    metrics.READ_REPAIRS.labels(target).inc()
            except (ApiError, TimeoutError, KeyError) as err:
                log.debug("read repair of %s on %s failed: %s", key, target, err)
            finally:
                self._queued.discard(job)

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
