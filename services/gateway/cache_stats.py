"""Cache statistics per invocation, counted at the edge: which REAPI calls Bazel made for which build.

Bazel tags every cache call with REAPI RequestMetadata (header
`build.bazel.remote.execution.v2.requestmetadata-bin`), whose tool_invocation_id is the invocation id.
The servicers count what a call did on its CallContext (hits, misses, blobs, bytes); when the call
ends, `observe` adds those counts and the call's time to the caller's (tenant, invocation) in memory,
and a background task sends the deltas to the metadata service every `interval` seconds in one call.
The cache path pays a dict update per call, never a database write. The tenant is always the calling
key's: an invocation id names a build only within a tenant, so no call counts toward another
tenant's invocation. A flush that fails is retried with the next one; if the metadata service stays
away, at most `max_pending` invocations are held and what comes beyond is dropped (and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable

from google.protobuf.message import DecodeError
from prometheus_client import Counter as Metric

from services.gateway.front import CallContext
from services.gen.bbapi.api.v1 import insights_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2, metadata_pb2_grpc
from services.gen.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2

log = logging.getLogger(__name__)

FLUSHES = Metric("bbapi_gateway_cache_stats_flushes", "Flushes of per-invocation cache statistics to the "
                 "metadata service, by result", ["result"])
DROPPED = Metric("bbapi_gateway_cache_stats_dropped", "Cache calls not counted toward their invocation because "
                 "too many invocations were waiting for a flush")

# Which time counter a REAPI call's duration adds to; calls of other services (BES, the API) are not cache calls
_UPLOADS = ("ByteStream/Write", "ContentAddressableStorage/BatchUpdateBlobs", "ActionCache/UpdateActionResult")
_DOWNLOADS = ("ByteStream/Read", "ContentAddressableStorage/BatchReadBlobs")
_LOOKUPS = ("ActionCache/GetActionResult", "ContentAddressableStorage/FindMissingBlobs",
            "ContentAddressableStorage/GetTree", "ByteStream/QueryWriteStatus", "Capabilities/GetCapabilities")
TIME_COUNTER = {**dict.fromkeys(_UPLOADS, "upload_usec"), **dict.fromkeys(_DOWNLOADS, "download_usec"),
                **dict.fromkeys(_LOOKUPS, "lookup_usec")}
LAST_CALL = "last_call_usec"
Key = tuple[str, str]


def invocation_of(request_metadata: bytes) -> str:
    """The tool_invocation_id of a RequestMetadata header; empty when absent or undecodable (a bad header
    costs the call its statistics, never the call itself)."""
    try:
        return re_pb2.RequestMetadata.FromString(request_metadata).tool_invocation_id
    except DecodeError:
        return ""


class CacheStatsRecorder:
    def __init__(self, metadata: metadata_pb2_grpc.MetadataStub, interval: float, max_pending: int = 100_000,
                 timeout: float = 10.0) -> None:
        self.metadata = metadata
        self.interval = interval
        self.timeout = timeout  # how long a flush waits for the metadata service (reconnecting included)
        self.max_pending = max_pending
        self._pending: dict[Key, Counter[str]] = {}
        self._task: asyncio.Task[None] | None = None

    def observe(self, ctx: CallContext, method: str, start: float) -> None:
        """Count a finished call (started at perf_counter `start`) toward the invocation it names."""
        time_counter = TIME_COUNTER.get(method)
        if time_counter is None or ctx.principal is None:
            return
        invocation = invocation_of(ctx.request_metadata)
        if not invocation:
            return
        counts = self._slot((ctx.principal.tenant, invocation))
        if counts is None:
            return
        if ctx.counts:
            counts.update(ctx.counts)
        counts[time_counter] += int((time.perf_counter() - start) * 1_000_000)
        counts[LAST_CALL] = time.time_ns() // 1000

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the timer and send what is left (a stopping gateway loses no counts it can deliver)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        request = metadata_pb2.RecordCacheStatsRequest(deltas=[
            metadata_pb2.CacheStatsDelta(
                tenant=tenant, invocation_id=invocation, last_call_usec=counts.pop(LAST_CALL, 0),
                stats=insights_pb2.CacheStats(**counts))
            for (tenant, invocation), counts in pending.items()])
        try:
            await self.metadata.RecordCacheStats(request, timeout=self.timeout, wait_for_ready=True)
        except Exception as err:  # whatever failed, the counts wait for the next flush
            FLUSHES.labels("failed").inc()
            log.warning("cache statistics of %d invocations not recorded yet: %s", len(pending), err)
            self._restore(request.deltas)
            return
        FLUSHES.labels("ok").inc()

    def _restore(self, deltas: Iterable[metadata_pb2.CacheStatsDelta]) -> None:
        for delta in deltas:
            counts = self._slot((delta.tenant, delta.invocation_id))
            if counts is None:
                continue
            counts.update({field.name: value for field, value in delta.stats.ListFields()})
            counts[LAST_CALL] = max(counts[LAST_CALL], delta.last_call_usec)

    def _slot(self, key: Key) -> Counter[str] | None:
        """The counts waiting for `key`'s next flush; None (and one more drop counted) when full."""
        counts = self._pending.get(key)
        if counts is None:
            if len(self._pending) >= self.max_pending:
                DROPPED.inc()
                return None
            counts = self._pending[key] = Counter()
        return counts
