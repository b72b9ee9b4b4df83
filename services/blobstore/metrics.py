"""`metrics`: cache hits and misses as the client sees them (the top of every stack), by tenant.

Counted here, above completeness checking, so an action result whose outputs are gone is a
miss, and by error class, so a miss is a miss whichever layer or process reported it. The
tenant label is bounded (services.common.tenant_labels).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from prometheus_client import Counter

from services.blobstore.access import BatchResult, BlobAccessDecorator, Scope
from services.common.errors import NotFound
from services.common.resources import Compressor, Digest
from services.common.tenant_labels import TenantCounter

CACHE_REQUESTS = Counter(
    "bbapi_gateway_cache_requests", "Cache lookups by cache (cas, ac), result (hit, miss) and tenant",
    ["cache", "result", "tenant"])
_COUNTS = TenantCounter(CACHE_REQUESTS)


class CacheMetrics(BlobAccessDecorator):
    async def find_missing(self, scope: Scope, digests: Sequence[Digest]) -> list[Digest]:
        missing = await self.backend.find_missing(scope, digests)
        _COUNTS(scope.tenant, "cas", "hit").inc(len(digests) - len(missing))
        _COUNTS(scope.tenant, "cas", "miss").inc(len(missing))
        return missing

    def read(self, scope: Scope, digest: Digest, offset: int = 0, limit: int = 0,
             compressor: Compressor = Compressor.IDENTITY) -> AsyncIterator[bytes]:
        """A streamed read (ByteStream, GetFile, downloads) is one lookup: a miss raises before any byte."""
        return _counted(scope.tenant, self.backend.read(scope, digest, offset, limit, compressor))

    async def batch_read(self, scope: Scope, digests: Sequence[Digest],
                         compressor: Compressor = Compressor.IDENTITY) -> list[BatchResult]:
        results = await self.backend.batch_read(scope, digests, compressor)
        hits = sum(r.error is None for r in results)
        _COUNTS(scope.tenant, "cas", "hit").inc(hits)
        _COUNTS(scope.tenant, "cas", "miss").inc(len(results) - hits)
        return results

    async def get_action_result(self, scope: Scope, action: Digest) -> bytes:
        try:
            data = await self.backend.get_action_result(scope, action)
        except NotFound:
            _COUNTS(scope.tenant, "ac", "miss").inc()
            raise
        _COUNTS(scope.tenant, "ac", "hit").inc()
        return data


async def _counted(tenant: str, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        first = await anext(stream, None)
    except NotFound:
        _COUNTS(tenant, "cas", "miss").inc()
        raise
    _COUNTS(tenant, "cas", "hit").inc()
    if first is not None:
        yield first
    async for chunk in stream:
        yield chunk
