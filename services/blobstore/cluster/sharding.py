"""Sharding: each key lives on the members its placement names; lookups and reads find it there.

* Reads take the first hit in the read order; owners asked before it that missed are repaired
  (services.blobstore.cluster.replication). A stream interrupted by a dying member resumes from
  the next replica at the same offset (uncompressed reads; a zstd frame cannot resume).
* FindMissingBlobs groups digests by member and asks all members in parallel, one round per
  replica rank: a blob is "present" only when a member answered that it has it.
* Writes are the replicator's (R copies, substitutes, hints).
* Liveness is judged per request (services.blobstore.cluster.liveness); placement never changes
  for it. The router in force is the owner's (`Routes`), replaced whole on a membership change.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from services.blobstore.access import BatchItem, BatchResult, BlobAccess, Key, Kind, Scope
from services.blobstore.cluster.handoff import HandoffQueue
from services.blobstore.cluster.liveness import Liveness
from services.blobstore.cluster.pool import ShardPool
from services.blobstore.cluster.replication import Replicator
from services.blobstore.cluster.routing import Router, Routes
from services.blobstore.streams import closing
from services.common.errors import ApiError, NotFound, Unavailable
from services.common.resources import Compressor, Digest

R = TypeVar("R")


class ShardedBlobAccess(BlobAccess):
    def __init__(self, routes: Routes, pool: ShardPool, liveness: Liveness, handoff: HandoffQueue,
                 replicator: Replicator) -> None:
        self.routes = routes
        self.pool = pool
        self.liveness = liveness
        self.handoff = handoff
        self.replicator = replicator

    def _lookup_order(self, router: Router, key: Key) -> Sequence[str]:
        order = router.lookup_order(key.digest.hash)
        if not self.handoff.any():
            return order
        holders = [self.handoff.holder(owner, key) for owner in router.owners(key.digest.hash)]
        extra = [h for h in holders if h is not None and h not in order and self.liveness.is_up(h)]
        return (*order, *extra) if extra else order

    async def _rounds(self, router: Router, scope: Scope, digests: Sequence[Digest],
                      order: Callable[[Digest], Sequence[str]],
                      ask: Callable[[BlobAccess, list[Digest]], Awaitable[list[R | None]]]) -> list[R | None]:
        """Ask each digest's candidates in turn, all members in parallel per round; the first hit wins.

        `ask` answers a hit or None for each digest it was given. Owners that missed before a
        hit are repaired. Digests are tracked by position: this runs for every digest of a
        FindMissingBlobs, so it avoids hashing them over and over.
        """
        found: list[R | None] = [None] * len(digests)
        orders = [order(d) for d in digests]
        asked = [0] * len(digests)
        missed: dict[int, list[str]] = {}
        pending: Sequence[int] = range(len(digests))
        while pending:
            groups: dict[str, list[int]] = defaultdict(list)
            for i in pending:
                candidates, tried = orders[i], asked[i]
                if tried < len(candidates):
                    groups[candidates[tried]].append(i)
                    asked[i] = tried + 1
            members = list(groups)
            answers = await asyncio.gather(*(self.pool.call(m, ask, [digests[i] for i in groups[m]])
                                             for m in members), return_exceptions=True)
            retry: list[int] = []
            for member, answer in zip(members, answers, strict=True):
                if isinstance(answer, BaseException):
                    self.liveness.fail_over(member, answer)
                    retry += groups[member]
                    continue
                for i, hit in zip(groups[member], answer, strict=True):
                    if hit is None:
                        missed.setdefault(i, []).append(member)
                        retry.append(i)
                        continue
                    found[i] = hit
                    if i in missed:
                        self.replicator.repair(router, Key(scope, Kind.CAS, digests[i]), member, missed[i])
            pending = retry
        return found

    # ----- CAS -----------------------------------------------------------------------------------

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        router = self.routes.current
        if (member := router.sole_member()) is not None and not self.handoff.any():
            return await self._only(member, lambda shard: shard.find_missing(scope, digests))
        wanted = list(dict.fromkeys(digests))

        async def ask(shard: BlobAccess, batch: list[Digest]) -> list[bool | None]:
            absent = set(await shard.find_missing(scope, batch))
            return [None if d in absent else True for d in batch]

        present = await self._rounds(router, scope, wanted,
                                     lambda d: self._lookup_order(router, Key(scope, Kind.CAS, d)), ask)
        return [d for d, hit in zip(wanted, present, strict=True) if hit is None]

    async def _only(self, member: str, call: Callable[[BlobAccess], Awaitable[R]]) -> R:
        """A call to the cluster's one member; a failure marks it down, as any member's would."""
        try:
            return await self.pool.call(member, call)
        except (ApiError, TimeoutError) as err:
            self.liveness.failed(member, err)
            raise

    def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
             compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        router = self.routes.current
        order = router.read_order(digest.hash)
        if len(order) == 1 and not self.handoff.any():  # one replica, nothing to fail over to or repair
            return self.pool[order[0]].read(scope, digest, offset, limit, compressor)
        return self._read(router, order, scope, digest, offset, limit, compressor)

    async def _read(self, router: Router, order: Sequence[str], scope: Scope, digest: Digest, offset: int,
                    limit: int, compressor: Compressor) -> AsyncIterator[bytes]:
        key = Key(scope, Kind.CAS, digest)
        missed: list[str] = []
        sent = 0  # bytes already passed on (uncompressed reads resume after them)
        unreachable: BaseException | None = None
        for member in order:
            if limit and sent >= limit:
                return
            started = False
            stream = self.pool[member].read(scope, digest, offset + sent, limit - sent if limit else 0, compressor)
            try:
                async with closing(stream):
                    async for chunk in stream:
                        if not started:
                            started = True
                            self.replicator.repair(router, key, member, missed)
                        sent += len(chunk)
                        yield chunk
                if not started:
                    self.replicator.repair(router, key, member, missed)
                return
            except NotFound:
                if started:
                    raise
                missed.append(member)
            except (ApiError, TimeoutError) as err:
                self.liveness.fail_over(member, err)
                if started and compressor is not Compressor.IDENTITY:
                    raise
                unreachable = err
        raise Unavailable(f"blob {digest}: its replicas are unreachable ({unreachable})") if unreachable \
            else NotFound(f"blob {digest} not found")

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        return await self.replicator.write(self.routes.current, scope, digest, chunks, compressor)

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        router = self.routes.current
        if (member := router.sole_member()) is not None:
            return await self._only(member, lambda shard: shard.batch_read(scope, digests, compressor))

        async def ask(shard: BlobAccess, batch: list[Digest]) -> list[BatchResult | None]:
            results = await shard.batch_read(scope, batch, compressor)
            return [r if r.error is None else None for r in results]

        unique = list(dict.fromkeys(digests))
        found = dict(zip(unique, await self._rounds(router, scope, unique, lambda d: router.read_order(d.hash), ask),
                         strict=True))
        return [found[d] or BatchResult(d, error=NotFound(f"blob {d} not found")) for d in digests]

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        return await self.replicator.batch_write(self.routes.current, scope, items)

    async def delete(self, scope: Scope, digest: Digest) -> bool:
        return await self._delete_everywhere(digest, lambda shard: shard.delete(scope, digest))

    async def _delete_everywhere(self, digest: Digest, call: Callable[[BlobAccess], Awaitable[bool]]) -> bool:
        members = self.routes.current.read_order(digest.hash)
        answers = await asyncio.gather(*(self.pool.call(m, call) for m in members), return_exceptions=True)
        for member, answer in zip(members, answers, strict=True):
            if isinstance(answer, BaseException):
                self.liveness.fail_over(member, answer)
        return any(answer is True for answer in answers)

    # ----- AC ------------------------------------------------------------------------------------

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        router = self.routes.current
        key = Key(scope, Kind.AC, action)
        missed: list[str] = []
        for member in self._lookup_order(router, key):
            try:
                data: bytes = await self.pool.call(member, lambda shard: shard.get_action_result(scope, action))
            except NotFound:
                missed.append(member)
                continue
            except (ApiError, TimeoutError) as err:
                self.liveness.fail_over(member, err)
                continue
            self.replicator.repair(router, key, member, missed)
            return data
        raise NotFound(f"no action result for {action}")

    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        await self.replicator.put_action_result(self.routes.current, scope, action, result)

    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        return await self._delete_everywhere(action, lambda shard: shard.delete_action_result(scope, action))
