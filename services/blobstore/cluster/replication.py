"""Replication: every write goes to a key's R owners, and a missing replica is made good.

* Writes stream to the key's write set in parallel (services.blobstore.cluster.tee) and are
  acknowledged once every replica that is up has stored the key durably. An owner that is down,
  or fails during the write, is replaced by the next live member of the slot's preference list,
  which keeps the copy under a hinted hand-off (services.blobstore.cluster.handoff).
* Reads that found a key only after some owners missed it schedule a read repair of those owners
  (services.blobstore.cluster.repair).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from services.blobstore.access import BatchItem, BatchResult, BlobAccess, Key, Kind, Scope
from services.blobstore.cluster import metrics
from services.blobstore.cluster.copying import copy
from services.blobstore.cluster.failures import rejects_input
from services.blobstore.cluster.handoff import HandoffQueue
from services.blobstore.cluster.liveness import Liveness
from services.blobstore.cluster.pool import ShardPool
from services.blobstore.cluster.repair import Repairer
from services.blobstore.cluster.routing import Router, Target
from services.blobstore.cluster.tee import tee
from services.blobstore.streams import coalesce
from services.common.errors import ApiError, Unavailable
from services.common.resources import Compressor, Digest

# Bazel uploads in 16 KiB messages: blocks are formed once, here, not once per replica, and cost
# R queue hand-offs per block, not per message.
COALESCE = 1024 * 1024


class Replicator:
    def __init__(self, pool: ShardPool, liveness: Liveness, handoff: HandoffQueue, repairer: Repairer) -> None:
        self.pool = pool
        self.liveness = liveness
        self.handoff = handoff
        self.repairer = repairer

    def repair(self, router: Router, key: Key, source: str, missed: Sequence[str]) -> None:
        """`source` had the key; owners among `missed` get a copy in the background."""
        owners = router.owners(key.digest.hash)
        targets = [m for m in missed if m in owners]
        if targets:
            self.repairer.schedule(key, source, targets)

    async def _settle(self, router: Router, key: Key, targets: Sequence[Target], outcomes: Sequence[object],
                      redo: Callable[[str | None, str], Awaitable[object]], size: int) -> list[object]:
        """Account for every replica's outcome; replace failed ones, leaving hints for their owners.

        `redo(source, member)` stores the key on a substitute, from `source` (a member that has
        it) when the data is not at hand; it bounds its own time (a copy of a large blob may
        rightly take long). Raises when no replica stored the key.
        """
        stored: list[str] = []
        results: list[object] = []
        failed: list[Target] = []
        error: BaseException | None = None
        for target, outcome in zip(targets, outcomes, strict=True):
            member = target.member
            if isinstance(outcome, BaseException):
                if rejects_input(outcome) or not isinstance(outcome, Exception):
                    raise outcome
                metrics.REPLICA_WRITES.labels(member, "failed").inc()
                self.liveness.failed(member, outcome)
                failed.append(target)
                error = error or outcome
                continue
            metrics.REPLICA_WRITES.labels(member, "existed" if outcome is True else "ok").inc()
            if outcome is not True:
                metrics.WRITTEN_BLOBS.labels(member).inc()
                metrics.WRITTEN_BYTES.labels(member).inc(size)
            stored.append(member)
            results.append(outcome)
            if target.stands_in_for is not None:
                self.handoff.add(target.stands_in_for, key, member)
        tried = {t.member for t in targets}
        for target in failed:
            owner = target.stands_in_for or target.member
            while (substitute := router.substitute(key.digest.hash, tried)) is not None:
                tried.add(substitute)
                try:
                    await redo(stored[0] if stored else None, substitute)
                except Exception as err:
                    if rejects_input(err):
                        raise
                    self.liveness.failed(substitute, err)
                    continue
                stored.append(substitute)
                self.handoff.add(owner, key, substitute)
                break
            else:
                if stored:
                    self.handoff.add(owner, key, stored[0])
        if not stored:
            raise error or Unavailable(f"no CAS member could store {key.digest}")
        return results

    async def write(self, router: Router, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor) -> bool:
        key = Key(scope, Kind.CAS, digest)
        targets = router.write_set(digest.hash)

        def writer(member: str) -> Callable[[AsyncIterator[bytes]], Awaitable[bool]]:
            async def write(branch: AsyncIterator[bytes]) -> bool:
                try:
                    return await self.pool[member].write(scope, digest, branch, compressor)
                except GeneratorExit:  # RemoteBlobAccess re-raises how grpc closed its request stream
                    raise Unavailable(f"{member} ended the upload of {digest}") from None
            return write

        outcomes = await tee(coalesce(chunks, COALESCE), [writer(t.member) for t in targets])

        async def recopy(source: str | None, member: str) -> None:
            if source is None:
                raise Unavailable(f"blob {digest}: no replica took the upload")
            await copy(key, self.pool[source], self.pool[member])

        results = await self._settle(router, key, targets, outcomes, recopy, digest.size)
        return all(r is True for r in results)

    async def batch_write(self, router: Router, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        sole = router.sole_member()
        routes, groups = _routes(sole, router, items)
        members = list(groups)

        async def write_batch(shard: BlobAccess, batch: list[BatchItem]) -> list[BatchResult]:
            return await shard.batch_write(scope, batch)

        answers = await asyncio.gather(*(self.pool.call(m, write_batch, [items[i] for i in groups[m]])
                                         for m in members), return_exceptions=True)
        outcome: dict[tuple[int, str], object] = {}
        for member, answer in zip(members, answers, strict=True):
            for position, index in enumerate(groups[member]):
                if isinstance(answer, BaseException):
                    outcome[index, member] = answer
                else:
                    error = answer[position].error
                    outcome[index, member] = error if error is not None else False

        async def settle(index: int) -> BatchResult:
            item = items[index]

            async def rewrite(_source: str | None, member: str) -> None:
                (result,) = await self.pool.call(member, lambda shard: shard.batch_write(scope, [item]))
                if result.error is not None:
                    raise result.error

            try:
                await self._settle(router, Key(scope, Kind.CAS, item.digest), routes[index],
                                   [outcome[index, t.member] for t in routes[index]], rewrite, item.digest.size)
            except ApiError as err:
                return BatchResult(item.digest, error=err)
            return BatchResult(item.digest)

        # the common case costs no coroutine per item: every owner was up and stored it
        results: list[BatchResult | None] = [None] * len(items)
        if sole is not None and not isinstance(answers[0], BaseException):  # a cluster of one: its answers stand
            results = [result if result.error is None else None for result in answers[0]]
        for index, targets in enumerate(routes if sole is None else ()):
            if targets and all(t.stands_in_for is None and outcome[index, t.member] is False for t in targets):
                results[index] = BatchResult(items[index].digest)
        for member in members:
            stored = [i for i in groups[member] if results[i] is not None]
            metrics.REPLICA_WRITES.labels(member, "ok").inc(len(stored))
            metrics.WRITTEN_BLOBS.labels(member).inc(len(stored))
            metrics.WRITTEN_BYTES.labels(member).inc(sum(items[i].digest.size for i in stored))
        rest = [i for i, result in enumerate(results) if result is None]
        for index, result in zip(rest, await asyncio.gather(*(settle(i) for i in rest)), strict=True):
            results[index] = result
        return [result for result in results if result is not None]

    async def put_action_result(self, router: Router, scope: Scope, action: Digest, result: bytes) -> None:
        targets = router.write_set(action.hash)

        def put(shard: BlobAccess) -> Awaitable[None]:
            return shard.put_action_result(scope, action, result)

        outcomes = await asyncio.gather(*(self.pool.call(t.member, put) for t in targets), return_exceptions=True)
        await self._settle(router, Key(scope, Kind.AC, action), targets, outcomes,
                           lambda _source, member: self.pool.call(member, put), len(result))


def _routes(sole: str | None, router: Router,
            items: Sequence[BatchItem]) -> tuple[list[list[Target]], dict[str, list[int]]]:
    """Each item's write set, and the items each member gets. A cluster of one (`sole`, the all-in-one)
    needs no placement per item: its member owns everything."""
    if sole is not None:
        return [[Target(sole)]] * len(items), {sole: list(range(len(items)))}
    routes: list[list[Target]] = []
    groups: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        targets = router.write_set(item.digest.hash)
        routes.append(targets)
        for target in targets:
            groups[target.member].append(index)
    return routes, groups
