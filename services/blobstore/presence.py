"""`presence`: FindMissingBlobs answers "present" from memory for blobs a scope has just stored or seen.

With a remote cache and `--bes_backend`, Bazel's build-event uploader asks FindMissingBlobs about
every output its events name, seconds after the build wrote them (cold build) or their action
results were checked (rebuild): about two calls per target, each a lookup in the store, which in a
cluster is a call to a shard process. This decorator remembers, per scope (tenant, instance name,
digest function), the digests that scope wrote or was told exist, for a short time, and answers
those from memory; everything else still goes to the store.

It never answers "present" for anything the store did not confirm to the same scope within `ttl`,
and the store's minimum age before eviction (hours) is far longer than `ttl`, so nothing it
remembers can have been evicted. A delete (DeleteFile) through this gateway forgets the digest, and
a lookup that raced with it remembers nothing; one through another gateway replica is seen here
within `ttl`. Bounded: the oldest entries go first beyond `max_entries`.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from itertools import compress, repeat

from prometheus_client import Counter

from services.blobstore.access import BatchItem, BatchResult, BlobAccess, BlobAccessDecorator, Scope
from services.common.resources import Compressor, Digest

TTL_SECONDS = 30.0
MAX_ENTRIES = 100_000  # ~20 MB at most

ANSWERED = Counter("bbapi_blobstore_presence_answered",
                   "FindMissingBlobs digests answered present from the recently-confirmed memory, no store lookup")


class RecentlyPresent(BlobAccessDecorator):
    """One ordered map per scope (digest: expiry, oldest confirmation first), so a FindMissingBlobs
    of thousands of digests is a few C-level passes keyed by the digests themselves."""

    def __init__(self, backend: BlobAccess, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        super().__init__(backend)
        self.ttl = ttl
        self.max_entries = max_entries
        self._expiry: dict[Scope, OrderedDict[Digest, float]] = {}
        self._size = 0  # entries over all scopes
        self._deletes = 0  # bumped by every delete: a confirmation that raced with one is not remembered

    def _remember(self, scope: Scope, digests: Sequence[Digest], deletes_before: int) -> None:
        if self._deletes != deletes_before or not digests:
            return
        now = time.monotonic()
        known = self._expiry.setdefault(scope, OrderedDict())
        self._size -= len(known)
        deque(map(known.pop, digests, repeat(None)), maxlen=0)  # re-added below, at the young end
        known.update(zip(digests, repeat(now + self.ttl)))
        self._size += len(known)
        self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        """Drop expired entries, then the oldest beyond `max_entries` (whichever scope holds them)."""
        for scope, known in list(self._expiry.items()):
            while known and next(iter(known.values())) <= now:
                known.popitem(last=False)
                self._size -= 1
            if not known:
                del self._expiry[scope]
        while self._size > self.max_entries:
            oldest = min(self._expiry.values(), key=lambda known: next(iter(known.values())))
            for _ in range(self._size - self.max_entries if len(self._expiry) == 1 else 1):
                oldest.popitem(last=False)
                self._size -= 1

    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        known = self._expiry.get(scope)
        if known is None:
            unknown = list(digests)
        else:
            expired = map(time.monotonic().__ge__, map(known.get, digests, repeat(0.0)))  # C calls, no bytecode each
            unknown = list(compress(digests, expired))
        ANSWERED.inc(len(digests) - len(unknown))
        if not unknown:
            return []
        deletes = self._deletes
        missing = await self.backend.find_missing(scope, unknown)
        if len(missing) < len(unknown):
            absent = set(missing)
            self._remember(scope, [d for d in unknown if d not in absent] if missing else unknown, deletes)
        return missing

    async def write(self, scope: Scope, digest: Digest, chunks: AsyncIterator[bytes],
                    compressor: Compressor = Compressor.IDENTITY) -> bool:
        deletes = self._deletes
        existed = await self.backend.write(scope, digest, chunks, compressor)
        self._remember(scope, [digest], deletes)
        return existed

    async def batch_write(self, scope: Scope, items: Sequence[BatchItem]) -> list[BatchResult]:
        deletes = self._deletes
        results = await self.backend.batch_write(scope, items)
        self._remember(scope, [r.digest for r in results if r.error is None], deletes)
        return results

    async def delete(self, scope: Scope, digest: Digest) -> bool:
        self._deletes += 1
        known = self._expiry.get(scope)
        if known is not None and known.pop(digest, None) is not None:
            self._size -= 1
        try:
            return await self.backend.delete(scope, digest)
        finally:
            self._deletes += 1  # a lookup that started while the delete ran must not remember either
