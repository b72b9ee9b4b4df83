"""`metrics`: cache hits and misses as the client sees them (the top of every stack).

Counted here, above completeness checking, so an action result whose outputs are gone is a
miss, and by error class, so a miss is a miss whichever layer or process reported it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from prometheus_client import Counter

from services.blobstore.access import BatchResult, BlobAccessDecorator, Scope
from services.common.errors import NotFound
from services.common.resources import Compressor, Digest

CACHE_REQUESTS = Counter(
    "bbapi_gateway_cache_requests", "Cache lookups by cache (cas, ac) and result (hit, miss)", ["cache", "result"])
_CAS_HIT, _CAS_MISS = CACHE_REQUESTS.labels("cas", "hit"), CACHE_REQUESTS.labels("cas", "miss")
_AC_HIT, _AC_MISS = CACHE_REQUESTS.labels("ac", "hit"), CACHE_REQUESTS.labels("ac", "miss")


class CacheMetrics(BlobAccessDecorator):
    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        missing = await self.backend.find_missing(scope, digests)
        _CAS_HIT.inc(len(digests) - len(missing))
        _CAS_MISS.inc(len(missing))
        return missing

    def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
             compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        """A streamed read (ByteStream, GetFile, downloads) is one lookup: a miss raises before any byte."""
        return _counted(self.backend.read(scope, digest, offset, limit, compressor))

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        results = await self.backend.batch_read(scope, digests, compressor)
        hits = sum(r.error is None for r in results)
        _CAS_HIT.inc(hits)
        _CAS_MISS.inc(len(results) - hits)
        return results

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        try:
            data = await self.backend.get_action_result(scope, action)
        except NotFound:
            _AC_MISS.inc()
            raise
        _AC_HIT.inc()
        return data


async def _counted(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        first = await anext(stream, None)
    except NotFound:
        _CAS_MISS.inc()
        raise
    _CAS_HIT.inc()
    if first is not None:
        yield first
    async for chunk in stream:
        yield chunk
