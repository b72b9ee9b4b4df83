"""`sharded`: blobs and action results spread over the CAS members, R copies each.

* Writes stream to the key's write set in parallel (services.gateway.tee) and are acknowledged
  once every replica that is up has stored the blob durably. An owner that is down, or fails
  during the write, is replaced by the next live member of the slot's preference list, which
  keeps the copy under a hinted hand-off (services.gateway.handoff).
* Reads take the first hit in the read order; owners asked before it that missed are repaired
  in the background (services.gateway.repair). A stream interrupted by a dying member resumes
  from the next replica at the same offset (uncompressed reads; a zstd frame cannot resume).
* FindMissingBlobs groups digests by member and asks all members in parallel, one round per
  replica rank: a blob is "present" only when a member answered that it has it.
* Liveness is judged per request (services.gateway.liveness); placement never changes for it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from services.common.blobaccess import BatchItem, BatchResult, BlobAccess, Scope, coalesce
from services.common.errors import ApiError, NotFound, Unavailable
from services.common.resources import SHA256_EMPTY, Compressor, Digest
from services.gateway import cluster_metrics as metrics
from services.gateway.copying import Key, Kind, closing, copy
from services.gateway.failures import is_not_found, rejects_input
from services.gateway.handoff import HandoffQueue
from services.gateway.liveness import Liveness
from services.gateway.members import ShardPool
from services.gateway.remote import COALESCE
from services.gateway.repair import Repairer
from services.gateway.routing import Router, Target
from services.gateway.tee import tee

T = TypeVar("T")
R = TypeVar("R")

UNARY_TIMEOUT = 30.0  # a member that does not answer a unary call in this time counts as down


def _empty(digest: Digest) -> bool:
    return digest.size == 0 and digest.hash == SHA256_EMPTY


class ShardedBlobAccess(BlobAccess):
    def __init__(self, pool: ShardPool, liveness: Liveness, handoff: HandoffQueue, repairer: Repairer,
                 router: Router) -> None:
        self.pool = pool
        self.liveness = liveness
        self.handoff = handoff
        self.repairer = repairer
        self.router = router  # replaced as a whole when the membership changes

    # ----- plumbing ------------------------------------------------------------------------------

    async def _call(self, member: str, call: Callable[..., Awaitable[T]], *args: object) -> T:
        """`call(shard, *args)` on a member's connection, bounded in time."""
        async with asyncio.timeout(UNARY_TIMEOUT):
            return await call(self.pool[member], *args)

    def _lookup_order(self, router: Router, scope: Scope, kind: Kind, digest: Digest) -> Sequence[str]:
        order = router.lookup_order(digest.hash)
        if not self.handoff.any():
            return order
        key = Key(scope, kind, digest)
        holders = [self.handoff.holder(owner, key) for owner in router.owners(digest.hash)]
        extra = [h for h in holders if h is not None and h not in order and self.liveness.is_up(h)]
        return (*order, *extra) if extra else order

    def _repair(self, router: Router, key: Key, source: str, missed: Sequence[str]) -> None:
        owners = router.owners(key.digest.hash)
        targets = [m for m in missed if m in owners]
        if targets:
            self.repairer.schedule(key, source, targets)

    def _failed(self, member: str, err: BaseException) -> None:
        """A member failed a request: fail over if it is unreachable, else the error stands."""
        if not self.liveness.failed(member, err):
            raise err

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
            answers = await asyncio.gather(*(self._call(m, ask, [digests[i] for i in groups[m]]) for m in members),
                                           return_exceptions=True)
            retry: list[int] = []
            for member, answer in zip(members, answers, strict=True):
                if isinstance(answer, BaseException):
                    self._failed(member, answer)
                    retry += groups[member]
                    continue
                for i, hit in zip(groups[member], answer, strict=True):
                    if hit is None:
                        missed.setdefault(i, []).append(member)
                        retry.append(i)
                        continue
                    found[i] = hit
                    if i in missed:
                        self._repair(router, Key(scope, "cas", digests[i]), member, missed[i])
            pending = retry
        return found

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

    def _write_set(self, router: Router, digest: Digest) -> list[Target]:
        targets = router.write_set(digest.hash)
        if not targets:
            raise Unavailable(f"every CAS member that could hold {digest} is down")
        return targets

    # ----- CAS -----------------------------------------------------------------------------------

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        router = self.router
        wanted = [d for d in dict.fromkeys(digests) if not _empty(d)]

        async def ask(shard: BlobAccess, batch: list[Digest]) -> list[bool | None]:
            absent = set(await shard.find_missing(scope, batch))
            return [None if d in absent else True for d in batch]

        present = await self._rounds(router, scope, wanted, lambda d: self._lookup_order(router, scope, "cas", d), ask)
        return [d for d, hit in zip(wanted, present, strict=True) if hit is None]

    async def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
                   compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        router = self.router
        key = Key(scope, "cas", digest)
        missed: list[str] = []
        sent = 0  # bytes already passed on (uncompressed reads resume after them)
        unreachable: BaseException | None = None
        for member in router.read_order(digest.hash):
            if limit and sent >= limit:
                return
            started = False
            stream = self.pool[member].read(scope, digest, offset + sent, limit - sent if limit else 0, compressor)
            try:
                async with closing(stream):
                    async for chunk in stream:
                        if not started:
                            started = True
                            self._repair(router, key, member, missed)
                        sent += len(chunk)
                        yield chunk
                if not started:
                    self._repair(router, key, member, missed)
                return
            except (ApiError, TimeoutError) as err:
                if is_not_found(err) and not started:
                    missed.append(member)
                    continue
                self._failed(member, err)
                if started and compressor is not Compressor.IDENTITY:
                    raise
                unreachable = err
        raise Unavailable(f"blob {digest}: its replicas are unreachable ({unreachable})") if unreachable \
            else NotFound(f"blob {digest} not found")

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        if _empty(digest):
            return True
        router = self.router
        key = Key(scope, "cas", digest)
        targets = self._write_set(router, digest)

        def writer(member: str) -> Callable[[AsyncIterator[bytes]], Awaitable[bool]]:
            async def write(branch: AsyncIterator[bytes]) -> bool:
                try:
                    return await self.pool[member].write(scope, digest, branch, compressor)
                except GeneratorExit:  # RemoteBlobAccess re-raises how grpc closed its request stream
                    raise Unavailable(f"{member} ended the upload of {digest}") from None
            return write

        # blocks formed once here, not once per replica, and R queue hand-offs per block, not per 16 KiB
        outcomes = await tee(coalesce(chunks, COALESCE), [writer(t.member) for t in targets])

        async def recopy(source: str | None, member: str) -> None:
            if source is None:
                raise Unavailable(f"blob {digest}: no replica took the upload")
            await copy(key, self.pool[source], self.pool[member])

        results = await self._settle(router, key, targets, outcomes, recopy, digest.size)
        return all(r is True for r in results)

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        router = self.router

        async def ask(shard: BlobAccess, batch: list[Digest]) -> list[BatchResult | None]:
            results = await shard.batch_read(scope, batch, compressor)
            return [r if r.error is None else None for r in results]

        unique = list(dict.fromkeys(digests))
        found = dict(zip(unique, await self._rounds(router, scope, unique, lambda d: router.read_order(d.hash), ask),
                         strict=True))
        return [found[d] or BatchResult(d, error=NotFound(f"blob {d} not found")) for d in digests]

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        router = self.router
        routes: list[list[Target]] = []
        groups: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            targets = router.write_set(item.digest.hash)
            routes.append(targets)
            for target in targets:
                groups[target.member].append(index)
        members = list(groups)

        async def write_batch(shard: BlobAccess, batch: list[BatchItem]) -> list[BatchResult]:
            return await shard.batch_write(scope, batch)

        answers = await asyncio.gather(*(self._call(m, write_batch, [items[i] for i in groups[m]]) for m in members),
                                       return_exceptions=True)
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
            if not routes[index]:
                return BatchResult(item.digest, error=Unavailable(f"every CAS member that could hold {item.digest} "
                                                                  "is down"))

            async def rewrite(_source: str | None, member: str) -> None:
                (result,) = await self._call(member, lambda shard: shard.batch_write(scope, [item]))
                if result.error is not None:
                    raise result.error

            try:
                await self._settle(router, Key(scope, "cas", item.digest), routes[index],
                                   [outcome[index, t.member] for t in routes[index]], rewrite, item.digest.size)
            except ApiError as err:
                return BatchResult(item.digest, error=err)
            return BatchResult(item.digest)

        return list(await asyncio.gather(*(settle(i) for i in range(len(items)))))

    async def delete(self, scope: Scope, digest: Digest) -> bool:
        return await self._delete_everywhere(digest, lambda shard: shard.delete(scope, digest))

    async def _delete_everywhere(self, digest: Digest, call: Callable[[BlobAccess], Awaitable[bool]]) -> bool:
        members = self.router.read_order(digest.hash)
        answers = await asyncio.gather(*(self._call(m, call) for m in members), return_exceptions=True)
        for member, answer in zip(members, answers, strict=True):
            if isinstance(answer, BaseException):
                self._failed(member, answer)
        return any(answer is True for answer in answers)

    # ----- AC ------------------------------------------------------------------------------------

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        router = self.router
        key = Key(scope, "ac", action)
        missed: list[str] = []
        for member in self._lookup_order(router, scope, "ac", action):
            try:
                data: bytes = await self._call(member, lambda shard: shard.get_action_result(scope, action))
            except (ApiError, TimeoutError) as err:
                if is_not_found(err):
                    missed.append(member)
                else:
                    self._failed(member, err)
                continue
            self._repair(router, key, member, missed)
            return data
        raise NotFound(f"no action result for {action}")

    async def put_action_result(self, scope: Scope, action: Digest, result: bytes) -> None:
        router = self.router
        targets = self._write_set(router, action)

        def put(shard: BlobAccess) -> Awaitable[None]:
            return shard.put_action_result(scope, action, result)

        outcomes = await asyncio.gather(*(self._call(t.member, put) for t in targets), return_exceptions=True)
        await self._settle(router, Key(scope, "ac", action), targets, outcomes,
                           lambda _source, member: self._call(member, put), len(result))

    async def delete_action_result(self, scope: Scope, action: Digest) -> bool:
        return await self._delete_everywhere(action, lambda shard: shard.delete_action_result(scope, action))
