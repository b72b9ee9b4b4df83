"""Cache statistics in the metadata service, on SQLite and PostgreSQL: deltas add up per tenant and
invocation, concurrent flushes neither lose counts nor deadlock, other tenants read NOT_FOUND."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.common.db import Sessions
from services.common.durations import Duration
from services.common.errors import InvalidArgument, NotFound
from services.gen.bbapi.api.v1 import insights_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2
from services.metadata.insights import cache_stats
from services.metadata.retention import policies
from tests.insights.support import load
from tests.retention.support import USEC_PER_DAY, expiry, now_plus


def delta(tenant: str, invocation_id: str, last_call_usec: int = 1, **stats: int) -> metadata_pb2.CacheStatsDelta:
    return metadata_pb2.CacheStatsDelta(tenant=tenant, invocation_id=invocation_id, last_call_usec=last_call_usec,
                                        stats=insights_pb2.CacheStats(**stats))


async def stats_of(maker: Sessions, tenant: str, invocation_id: str) -> tuple[dict[str, int], int]:
    """The non-zero counters and the last call (microseconds) the tenant reads for the invocation."""
    answer = await cache_stats.get_cache_stats(maker, tenant, insights_pb2.GetCacheStatsRequest(
        invocation_id=invocation_id))
    return {f.name: v for f, v in answer.cache_stats.ListFields()}, answer.last_call.ToMicroseconds()


async def test_deltas_add_up_per_tenant_and_invocation(maker: Sessions) -> None:
    build = str(uuid.uuid4())
    assert await cache_stats.record(maker, [
        delta("acme", build, 10, action_cache_hits=2, cas_download_bytes=100),
        delta("acme", build.upper(), 5, action_cache_hits=1, download_usec=7),  # the same UUID, spelled otherwise
        delta("globex", build, 3, action_cache_misses=9)]) == 2
    await cache_stats.record(maker, [delta("acme", build, 20, cas_uploads=3, cas_upload_bytes=3000)])
    await cache_stats.record(maker, [delta("acme", build, 15, lookup_usec=4)])  # an older call flushed late

    assert await stats_of(maker, "acme", build) == ({"action_cache_hits": 3, "cas_download_bytes": 100,
                                                     "download_usec": 7, "cas_uploads": 3, "cas_upload_bytes": 3000,
                                                     "lookup_usec": 4}, 20)
    assert await stats_of(maker, "globex", build) == ({"action_cache_misses": 9}, 3)
    with pytest.raises(NotFound):  # a tenant that neither ran nor cached this build
        await stats_of(maker, "initech", build)


async def test_a_build_without_cache_calls_reads_zero_and_others_read_missing(maker: Sessions) -> None:
    build = await load(maker, tenant="acme")
    assert await stats_of(maker, "acme", build) == ({}, 0)
    with pytest.raises(NotFound):
        await stats_of(maker, "globex", build)
    with pytest.raises(NotFound):
        await stats_of(maker, "acme", str(uuid.uuid4()))
    with pytest.raises(InvalidArgument):
        await stats_of(maker, "acme", "")


async def test_concurrent_flushes_in_opposite_orders_count_everything(maker: Sessions) -> None:
    """Gateways flush the same invocations at once: every count lands, none twice (PostgreSQL: no deadlock)."""
    builds = [str(uuid.uuid4()) for _ in range(20)]

    async def flush(order: list[str]) -> None:
        for _ in range(5):
            await cache_stats.record(maker, [delta("acme", b, cas_uploads=1) for b in order])

    await asyncio.gather(flush(builds), flush(builds[::-1]), flush(builds[5:] + builds[:5]))
    for build in builds:
        assert (await stats_of(maker, "acme", build))[0] == {"cas_uploads": 15}


async def test_deltas_without_tenant_or_invocation_are_ignored(maker: Sessions) -> None:
    assert await cache_stats.record(maker, [delta("", "x", cas_uploads=1), delta("acme", "", cas_uploads=1)]) == 0


async def test_statistics_expire_with_the_tenants_invocation_policy(maker: Sessions) -> None:
    """By their last call: the default keeps 30 days, a tenant's 0 keeps forever; a dry run only counts."""
    await policies.set_override(maker, "initech", invocations=Duration.parse("0"))
    now = now_plus()
    old, recent, kept = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    await cache_stats.record(maker, [delta("acme", old, now - 40 * USEC_PER_DAY, cas_uploads=1),
                                     delta("acme", recent, now - 10 * USEC_PER_DAY, cas_uploads=1),
                                     delta("initech", kept, now - 400 * USEC_PER_DAY, cas_uploads=1)])
    dry = await expiry(maker).sweep(now, dry_run=True)
    assert dry.rows["acme"]["invocation_cache_stats"] == 1 and "invocation_cache_stats" not in dry.rows.get(
        "initech", {})
    assert (await stats_of(maker, "acme", old))[0] == {"cas_uploads": 1}

    done = await expiry(maker, batch=1).sweep(now)
    assert done.rows["acme"]["invocation_cache_stats"] == 1
    with pytest.raises(NotFound):
        await stats_of(maker, "acme", old)
    assert (await stats_of(maker, "acme", recent))[0] == {"cas_uploads": 1}
    assert (await stats_of(maker, "initech", kept))[0] == {"cas_uploads": 1}
