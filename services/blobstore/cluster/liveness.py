"""Which CAS members this gateway believes reachable, judged per request and by health checks.

A request that fails with UNAVAILABLE (or times out) marks the member down at once, so the next
requests fail over without waiting; a periodic health check brings it back. Placement never
changes because of this: a down member keeps its slots and gets its data back through hinted
hand-off and read repair.
"""

from __future__ import annotations

import asyncio
import logging

from services.blobstore.cluster import metrics
from services.blobstore.cluster.failures import is_unavailable
from services.blobstore.cluster.pool import ShardPool

log = logging.getLogger(__name__)

class Liveness:
    def __init__(self, pool: ShardPool) -> None:
        self.pool = pool
        self._down: set[str] = set()
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """Counts changes of the down set (routing caches per epoch)."""
        return self._epoch

    def is_up(self, member_id: str) -> bool:
        return member_id not in self._down

    def _set(self, down: set[str]) -> None:
        if down != self._down:
            self._down = down
            self._epoch += 1

    def failed(self, member_id: str, err: BaseException) -> bool:
        """Note a failed request; True when it marked the member down (the caller fails over)."""
        if not is_unavailable(err):
            return False
        metrics.FAILOVERS.labels(member_id).inc()
        if member_id not in self._down:
            log.warning("CAS member %s is unreachable (%s); failing over until it answers again", member_id, err)
            self._set(self._down | {member_id})
            metrics.SHARD_UP.labels(member_id).set(0)
        return True

    def fail_over(self, member_id: str, err: BaseException) -> None:
        """A member failed a request: carry on without it if it is unreachable, else the error stands."""
        if not self.failed(member_id, err):
            raise err

    async def probe(self) -> None:
        """Health-check every member."""
        shards = self.pool.items()
        answers = await asyncio.gather(*(shard.ready() for _, shard in shards))
        down: set[str] = set()
        for (member_id, _), ok in zip(shards, answers, strict=True):
            metrics.SHARD_UP.labels(member_id).set(1 if ok else 0)
            if ok and member_id in self._down:
                log.info("CAS member %s is reachable again", member_id)
            elif not ok:
                down.add(member_id)
                if member_id not in self._down:
                    log.warning("CAS member %s failed its health check", member_id)
        self._set(down)
