"""The logs janitor's sweep: delete the logs of expired invocations, a few chunks per transaction.

The logs service keeps its own clock for each log (`log_streams.updated_at_usec`, its last open,
append or finish) and takes the tenants' policies from the metadata service. A log is deleted once
its tenant's window has passed since its last activity *and* the metadata service no longer keeps
its invocation (so a log never goes before its invocation, and a log whose invocation never got
stored still expires). A log goes tail first, then its chunks last-first, the stream row with the
last of them: while that runs, readers see a shorter log, never one with holes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Delete, delete, func, select, tuple_
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Sessions, reading
from services.common.distinct import distinct_values
from services.common.janitor import JanitorSettings, Sweep
from services.common.retention import cutoff
from services.common.retention_source import RetentionSource
from services.logs.models import LogChunk, LogPart, LogStream

CHUNK_WEIGHT = 64  # a chunk (up to 2 MB) or a log's tail counts as this many rows of a janitor batch
STREAMS, CHUNKS, PARTS = LogStream.__tablename__, LogChunk.__tablename__, LogPart.__tablename__


@dataclass
class LogExpiry:
    sessions: Sessions
    source: RetentionSource
    janitor: JanitorSettings

    async def sweep(self, now_usec: int, dry_run: bool = False) -> Sweep:
        rules = await self.source.policies()
        async with reading(self.sessions) as session:
            with_logs = await distinct_values(session, LogStream.tenant)
        done = Sweep(dry_run)
        for tenant in with_logs:
            if (before := cutoff(now_usec, rules.invocations_of(tenant))) is None:
                continue
            async for doomed in self._expired(tenant, before, now_usec):
                if dry_run:
                    await self._count(done, tenant, doomed)
                else:
                    await self._delete(done, tenant, doomed, before)
        return done

    async def _expired(self, tenant: str, before: int, now_usec: int) -> AsyncIterator[list[str]]:
        """Pages of the tenant's logs idle since before `before` whose invocation metadata no longer keeps."""
        after: tuple[int, str] | None = None
        while True:
            query = select(LogStream.updated_at_usec, LogStream.invocation_id).where(
                LogStream.tenant == tenant, LogStream.updated_at_usec < before)
            if after is not None:
                query = query.where(tuple_(LogStream.updated_at_usec, LogStream.invocation_id) > after)
            query = query.order_by(LogStream.updated_at_usec, LogStream.invocation_id).limit(self.janitor.janitor_batch)
            async with reading(self.sessions) as session:
                page = [(row[0], row[1]) for row in await session.execute(query)]
            if not page:
                return
            after = page[-1]
            kept = await self.source.retained(tenant, [name for _, name in page], now_usec)
            yield [name for _, name in page if name not in kept]

    async def _delete(self, done: Sweep, tenant: str, doomed: list[str], before: int) -> None:
        doomed = list(doomed)
        while doomed:
            budget = max(self.janitor.janitor_batch, CHUNK_WEIGHT)
            async with self.sessions.begin() as session:
                while doomed and budget >= CHUNK_WEIGHT:
                    budget, finished = await self._shrink(session, done, tenant, doomed[0], before, budget)
                    if finished:
                        doomed.pop(0)
            done.batch(max(self.janitor.janitor_batch, CHUNK_WEIGHT) - budget)
            await asyncio.sleep(self.janitor.janitor_pause_seconds)

    async def _shrink(self, session: AsyncSession, done: Sweep, tenant: str, invocation_id: str, before: int,
                      budget: int) -> tuple[int, bool]:
        """Delete the tail, then chunks last-first, within `budget`; (budget left, whether the log is gone)."""
        key = (LogStream.tenant == tenant, LogStream.invocation_id == invocation_id)
        stream = await session.scalar(select(LogStream).where(*key, LogStream.updated_at_usec < before)
                                      .with_for_update(skip_locked=True))
        if stream is None:  # resumed meanwhile, or being written: not expired (now)
            return budget, True
        rows = _rows(LogPart, tenant, invocation_id)
        if parts := await _deleted(session, delete(LogPart).where(*rows)):
            done.add(tenant, PARTS, parts)
            stream.tail_bytes, budget = 0, budget - CHUNK_WEIGHT
        take = min(stream.sealed_chunks, budget // CHUNK_WEIGHT)
        if take:
            done.add(tenant, CHUNKS, await _deleted(session, delete(LogChunk).where(
                *_rows(LogChunk, tenant, invocation_id), LogChunk.chunk_index >= stream.sealed_chunks - take)))
            stream.sealed_chunks -= take
            budget -= take * CHUNK_WEIGHT
        if stream.sealed_chunks:
            return budget, False
        await session.delete(stream)
        done.add(tenant, STREAMS, 1)
        return budget - 1, True

    async def _count(self, done: Sweep, tenant: str, doomed: Sequence[str]) -> None:
        async with reading(self.sessions) as session:
            for model, table in ((LogStream, STREAMS), (LogChunk, CHUNKS), (LogPart, PARTS)):
                found = await session.scalar(select(func.count()).where(*_rows(model, tenant, doomed)))
                done.add(tenant, table, int(found or 0))


def _rows(model: type[LogStream] | type[LogChunk] | type[LogPart], tenant: str,
          invocation_ids: str | Sequence[str]) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    names = [invocation_ids] if isinstance(invocation_ids, str) else list(invocation_ids)
    return model.tenant == tenant, model.invocation_id.in_(names)


async def _deleted(session: AsyncSession, statement: Delete) -> int:
    return cast(CursorResult[Any], await session.execute(statement)).rowcount
