"""Cache statistics per invocation: the gateways' counts added up, and GetCacheStats answering them.

Each gateway counts in memory and flushes deltas every second or so (services.gateway.cache_stats);
a flush is one transaction of upserts that add to the stored counters, so any number of gateways
may report on one invocation. Rows are written in key order: two flushes never wait on each other in
opposite orders (PostgreSQL would call that a deadlock).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import invocation_ids
from services.common.db import Sessions, reading
from services.common.errors import InvalidArgument, NotFound
from services.gen.bbapi.api.v1 import insights_pb2
from services.gen.bbapi.internal.v1 import metadata_pb2
from services.metadata.invocations import messages
from services.metadata.models import CACHE_STATS_FIELDS, INDEXED, Invocation, InvocationCacheStats

TABLE = InvocationCacheStats
Key = tuple[str, str]


def stored_id(invocation_id: str) -> str:
    """The form an invocation id is kept and looked up in: canonical when a UUID (as Bazel's are)."""
    return invocation_ids.normalised(invocation_id)[:INDEXED]


def _merged(deltas: Iterable[metadata_pb2.CacheStatsDelta]) -> dict[Key, dict[str, int]]:
    """One row of sums per (tenant, invocation), however many deltas name it."""
    rows: dict[Key, dict[str, int]] = {}
    for delta in deltas:
        if not delta.tenant or not delta.invocation_id:
            continue
        key = delta.tenant, stored_id(delta.invocation_id)
        row = rows.setdefault(key, dict.fromkeys(CACHE_STATS_FIELDS, 0) | {"last_call_usec": 0})
        for field, value in delta.stats.ListFields():
            row[field.name] += value
        row["last_call_usec"] = max(row["last_call_usec"], delta.last_call_usec)
    return rows


def _upsert(session: AsyncSession) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE adding the new counts to the stored ones (SQLite and PostgreSQL)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(TABLE)
    added = {name: TABLE.c[name] + insert.excluded[name] for name in CACHE_STATS_FIELDS}
    newest = case((insert.excluded.last_call_usec > TABLE.c.last_call_usec, insert.excluded.last_call_usec),
                  else_=TABLE.c.last_call_usec)
    return insert.on_conflict_do_update(index_elements=[TABLE.c.tenant, TABLE.c.invocation_id],
                                        set_={**added, "last_call_usec": newest})


async def record(sessions: Sessions, deltas: Iterable[metadata_pb2.CacheStatsDelta]) -> int:
    """Add every delta to its invocation's counters in one transaction; returns the rows touched."""
    rows = _merged(deltas)
    if not rows:
        return 0
    async with sessions.begin() as session:
        statement = _upsert(session)
        for key in sorted(rows):  # one statement per row, in key order (see the module docstring)
            tenant, invocation_id = key
            await session.execute(statement, {"tenant": tenant, "invocation_id": invocation_id, **rows[key]})
    return len(rows)


async def get_cache_stats(sessions: Sessions, tenant: str, request: insights_pb2.GetCacheStatsRequest
                          ) -> insights_pb2.GetCacheStatsResponse:
    """The tenant's counts for the invocation; zeros for one of its invocations without cache calls, and
    NOT_FOUND when the tenant knows the id neither way (another tenant's invocation reads as missing)."""
    if not request.invocation_id:
        raise InvalidArgument("GetCacheStatsRequest must contain an invocation_id")
    invocation_id = stored_id(request.invocation_id)
    async with reading(sessions) as session:
        row = (await session.execute(select(TABLE).where(TABLE.c.tenant == tenant,
                                                         TABLE.c.invocation_id == invocation_id))).first()
        known = row is not None or await session.scalar(select(Invocation.id).where(
            Invocation.tenant == tenant, Invocation.invocation_id == invocation_id)) is not None
    if not known:
        raise NotFound(f"invocation {request.invocation_id!r} not found")
    if row is None:
        return insights_pb2.GetCacheStatsResponse(cache_stats=insights_pb2.CacheStats())
    values = row._mapping
    return insights_pb2.GetCacheStatsResponse(
        cache_stats=insights_pb2.CacheStats(**{name: values[name] for name in CACHE_STATS_FIELDS}),
        last_call=messages.timestamp(values["last_call_usec"]))
